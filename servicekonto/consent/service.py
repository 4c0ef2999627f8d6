"""Consent rules: is a request covered, and storing a citizen's decision (with its audit event).

One ``Consent`` row per citizen and portal. ``granted_scopes`` includes ``openid`` once the
citizen allowed the portal to sign them in at all, so a portal's first request always shows the
consent page, even when it asks for no personal data. A refusal is remembered in the
``refused_*`` lists (what the citizen said no to last) without taking away earlier grants.
The caller commits; the audit event is in the same transaction.

Example::

    consent = load(db.session, user.id, client.id)
    if not is_covered(consent, {"openid", "email"}, {"email", "email_verified"}):
        ...  # show the consent page
    grant(db.session, user_id=user.id, client=client, scopes=..., claims=...)
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from oidc.models import Client
from servicekonto.audit import AuditTag, record
from servicekonto.consent.models import Consent
from servicekonto.db import utcnow


def load(session: Session, user_id: int, client_pk: int) -> Consent | None:
    return session.scalar(select(Consent).where(Consent.user_id == user_id,
                                                Consent.client_pk == client_pk))


def is_covered(consent: Consent | None, scopes: Iterable[str], claims: Iterable[str]) -> bool:
    """True when every requested scope and claim was granted before (and not withdrawn)."""
    if consent is None or "openid" not in (consent.granted_scopes or []):
        return False
    return (set(scopes) <= set(consent.granted_scopes or [])
            and set(claims) <= set(consent.granted_claims or []))


def _row(session: Session, user_id: int, client: Client) -> Consent:
    """The citizen's consent row for ``client``, locked for this transaction (created if new).

    Two decisions at once (two tabs, two instances) must not lose one another's scopes or fail:
    the row is read ``FOR UPDATE``; when it does not exist yet, the unique constraint
    ``uq_consents_user_client`` decides who creates it and the other re-reads the winner's row.
    """
    stmt = select(Consent).where(Consent.user_id == user_id,
                                 Consent.client_pk == client.id).with_for_update()
    consent = session.scalar(stmt)
    if consent is not None:
        return consent
    consent = Consent(user_id=user_id, client_pk=client.id, granted_scopes=[],
                      granted_claims=[], refused_scopes=[], refused_claims=[])
    if session.get_bind().dialect.name != "postgresql":
        session.add(consent)  # SQLite serialises writers; no savepoint dance needed
        return consent
    try:
        with session.begin_nested():
            session.add(consent)
            session.flush()  # waits for a parallel insert of the same pair to commit or abort
    except IntegrityError:
        consent = session.scalar(stmt)
        assert consent is not None  # the winner's row, now committed
    return consent


def grant(session: Session, *, user_id: int, client: Client, scopes: Iterable[str],
          claims: Iterable[str]) -> Consent:
    """Add ``scopes``/``claims`` to the citizen's grant for ``client`` and audit it."""
    scopes, claims = set(scopes) | {"openid"}, set(claims)
    consent = _row(session, user_id, client)
    consent.granted_scopes = sorted(set(consent.granted_scopes or []) | scopes)
    consent.granted_claims = sorted(set(consent.granted_claims or []) | claims)
    consent.refused_scopes = sorted(set(consent.refused_scopes or []) - scopes)
    consent.refused_claims = sorted(set(consent.refused_claims or []) - claims)
    consent.granted_at = utcnow()
    record(session, AuditTag.CONSENT_GRANTED, actor=f"citizen:{user_id}",
           subject_user_id=user_id, client_id=client.client_id,
           details={"scopes": sorted(scopes), "claims": sorted(claims)})
    return consent


def refuse(session: Session, *, user_id: int, client: Client, scopes: Iterable[str],
           claims: Iterable[str]) -> Consent:
    """Remember that the citizen refused what was asked (earlier grants stay) and audit it."""
    scopes, claims = set(scopes), set(claims)
    consent = _row(session, user_id, client)
    granted_scopes = set(consent.granted_scopes or [])
    granted_claims = set(consent.granted_claims or [])
    consent.refused_scopes = sorted(set(consent.refused_scopes or [])
                                    | (scopes - granted_scopes))
    consent.refused_claims = sorted(set(consent.refused_claims or [])
                                    | (claims - granted_claims))
    record(session, AuditTag.CONSENT_REFUSED, actor=f"citizen:{user_id}",
           subject_user_id=user_id, client_id=client.client_id,
           details={"scopes": sorted(scopes), "claims": sorted(claims)})
    return consent


def _revoke_tokens(session: Session, user_id: int, client: Client) -> int:
    from sqlalchemy import update

    from oidc.models import Token

    revoked = session.execute(
        update(Token).where(Token.user_id == user_id, Token.client_pk == client.id,
                            Token.revoked_at.is_(None))
        .values(revoked_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    return revoked or 0


def _notify(session: Session, user_id: int, client: Client) -> None:
    """Queue a back-channel logout for the portal (sent after the caller's commit)."""
    from oidc.backchannel import queue_logout

    queue_logout(session, user_id=user_id, sid=None, clients=[client],
                 revoke_session_tokens=False)


def withdraw(session: Session, *, user_id: int, client: Client, actor: str | None = None,
             notify: bool = True) -> int:
    """Withdraw everything the citizen granted ``client``: empty the grant lists, revoke the
    portal's tokens for the citizen at once, queue a back-channel logout to the portal (unless
    ``notify`` is False), audit it. Returns how many tokens were revoked.

    The caller commits; the logout token is delivered after the commit.
    """
    consent = load(session, user_id, client.id)
    previous_scopes = list(consent.granted_scopes or []) if consent else []
    previous_claims = list(consent.granted_claims or []) if consent else []
    if consent is not None:
        consent.granted_scopes = []
        consent.granted_claims = []
    revoked = _revoke_tokens(session, user_id, client)
    if notify:
        _notify(session, user_id, client)
    record(session, AuditTag.CONSENT_WITHDRAWN, actor=actor or f"citizen:{user_id}",
           subject_user_id=user_id, client_id=client.client_id,
           details={"scopes": previous_scopes, "claims": previous_claims,
                    "tokens_revoked": revoked})
    return revoked


def withdraw_claims(session: Session, *, user_id: int, client: Client, claims: Iterable[str],
                    actor: str | None = None, notify: bool = True) -> int:
    """Withdraw single claims: remove them from the grant (and scopes none of whose claims
    are left), revoke the portal's tokens for the citizen, queue a back-channel logout, audit
    it (``partial: true``). The next request that asks for them shows the consent page again.
    Withdrawing every claim of a portal leaves its sign-in grant (``openid``) in place; use
    :func:`withdraw` for the whole portal. Returns how many tokens were revoked.
    """
    from oidc.claims import SCOPE_CLAIMS

    consent = load(session, user_id, client.id)
    granted = set(consent.granted_claims or []) if consent else set()
    removed = sorted(set(claims) & granted)
    if consent is None or not removed:
        return 0
    left = granted - set(removed)
    removed_scopes = sorted(scope for scope in consent.granted_scopes or []
                            if scope in SCOPE_CLAIMS and not set(SCOPE_CLAIMS[scope]) & left)
    consent.granted_claims = sorted(left)
    consent.granted_scopes = sorted(set(consent.granted_scopes or []) - set(removed_scopes))
    revoked = _revoke_tokens(session, user_id, client)
    if notify:
        _notify(session, user_id, client)
    record(session, AuditTag.CONSENT_WITHDRAWN, actor=actor or f"citizen:{user_id}",
           subject_user_id=user_id, client_id=client.client_id,
           details={"scopes": removed_scopes, "claims": removed, "tokens_revoked": revoked,
                    "partial": True})
    return revoked
