"""Initial access tokens for programmatic registration (RFC 7591 section 3: the registration
endpoint is protected by a Bearer token an administrator hands to a portal operator).

* A token belongs to an organisation, carries the scopes its clients may ask for, an optional
  number of uses and an optional expiry, and ``pre_approved`` (its clients are active at once
  instead of pending). It is 256 random bits, stored only as SHA-256 hex, shown once.
* ``check_initial_token`` is a read-only check (answer 401 early, before any work);
  ``consume_initial_token`` takes one use atomically: one conditional UPDATE
  (``uses_left = uses_left - 1 WHERE uses_left > 0 AND not revoked AND not expired``) in the
  caller's transaction, so it commits or rolls back together with the client it registers and
  two concurrent registrations can never both take the last use.
* Issuance and revocation are audited (``client:initial_token:issued`` / ``revoked``), never
  with the token value.

Example::

    row, plain = issue_initial_token(session, organisation="Stadt Musterstadt",
                                     scope="openid profile email", uses=1, actor="cli")
    session.commit()   # hand ``plain`` to the operator
    ...
    row = consume_initial_token(session, plain)   # raises InitialTokenError subclasses
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from servicekonto.audit import AuditTag, record
from servicekonto.db import utcnow
from servicekonto.portals.models import InitialAccessToken, Organisation

MAX_TOKEN_LENGTH = 200


class InitialTokenError(Exception):
    """The token cannot be used (all subclasses answer 401 ``invalid_token``)."""

    description = "The initial access token is invalid."


class UnknownInitialToken(InitialTokenError):
    description = "The initial access token is invalid."


class InitialTokenRevoked(InitialTokenError):
    description = "The initial access token was revoked."


class InitialTokenExpired(InitialTokenError):
    description = "The initial access token has expired."


class InitialTokenExhausted(InitialTokenError):
    description = "The initial access token has no uses left."


class InitialTokenUsageError(ValueError):
    """Bad arguments when issuing or revoking (unknown organisation, scope, id, ...)."""


def hash_token(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def find_or_create_organisation(session: Session, name: str, *,
                                actor: str) -> tuple[Organisation, bool]:
    """The organisation named ``name`` (case-insensitive), created when missing."""
    name = " ".join((name or "").split())
    if not name:
        raise InitialTokenUsageError("an organisation needs a name")
    if len(name) > 200:
        raise InitialTokenUsageError("organisation names are limited to 200 characters")
    org = session.scalar(select(Organisation)
                         .where(func.lower(Organisation.name) == name.lower()))
    if org is not None:
        return org, False
    org = Organisation(name=name)
    session.add(org)
    session.flush()
    record(session, AuditTag.ORGANISATION_CREATED, actor=actor,
           details={"organisation_id": org.id, "name": name})
    return org, True


def _scope(scope: str | Sequence[str] | None) -> str:
    from oidc.claims import SCOPES_SUPPORTED

    tokens = (scope or "openid").split() if isinstance(scope, str | type(None)) else \
        [t for part in scope for t in str(part).split()]
    unknown = [t for t in tokens if t not in SCOPES_SUPPORTED]
    if unknown:
        raise InitialTokenUsageError(f"unknown scope {' '.join(unknown)} (supported: "
                                     f"{' '.join(SCOPES_SUPPORTED)})")
    return " ".join(dict.fromkeys(["openid", *tokens]))


def issue_initial_token(session: Session, *, organisation: Organisation | str,
                        scope: str | Sequence[str] | None = "openid",
                        pre_approved: bool = False, uses: int | None = None,
                        expires_at: dt.datetime | None = None,
                        actor: str) -> tuple[InitialAccessToken, str]:
    """Add a token for ``organisation`` (an Organisation, or a name: created when missing).

    Returns the row and the plain token (shown once, never stored). The caller commits.
    """
    if isinstance(organisation, str):
        organisation, _ = find_or_create_organisation(session, organisation, actor=actor)
    if uses is not None and (isinstance(uses, bool) or not isinstance(uses, int) or uses < 1):
        raise InitialTokenUsageError("uses must be at least 1 (or unlimited)")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InitialTokenUsageError("expires_at must be timezone-aware")
        if expires_at <= utcnow():
            raise InitialTokenUsageError("expires_at lies in the past")
    plain = secrets.token_urlsafe(32)
    row = InitialAccessToken(token_hash=hash_token(plain), organisation_id=organisation.id,
                             scope=_scope(scope), pre_approved=bool(pre_approved),
                             uses_left=uses, expires_at=expires_at, created_by=actor[:120])
    session.add(row)
    session.flush()
    record(session, AuditTag.INITIAL_TOKEN_ISSUED, actor=actor,
           details={"initial_token_id": row.id, "organisation_id": organisation.id,
                    "organisation": organisation.name, "scope": row.scope,
                    "pre_approved": row.pre_approved, "uses": uses,
                    "expires_at": expires_at.isoformat() if expires_at else None})
    return row, plain


def _lookup(session: Session, plain: str) -> InitialAccessToken:
    if not isinstance(plain, str) or not plain or len(plain) > MAX_TOKEN_LENGTH:
        raise UnknownInitialToken()
    row = session.scalar(select(InitialAccessToken)
                         .where(InitialAccessToken.token_hash == hash_token(plain)))
    if row is None:
        raise UnknownInitialToken()
    return row


def _check(row: InitialAccessToken, now: dt.datetime) -> None:
    if row.revoked_at is not None:
        raise InitialTokenRevoked()
    if row.expires_at is not None and row.expires_at <= now:
        raise InitialTokenExpired()
    if row.uses_left is not None and row.uses_left <= 0:
        raise InitialTokenExhausted()


def check_initial_token(session: Session, plain: str) -> InitialAccessToken:
    """The usable token for ``plain`` (read only; nothing is consumed)."""
    row = _lookup(session, plain)
    _check(row, utcnow())
    return row


def consume_initial_token(session: Session, plain: str) -> InitialAccessToken:
    """Take one use of the token, atomically, in the caller's transaction.

    Raises :class:`InitialTokenError` (a subclass says why). Roll back on any later failure:
    the use is then not taken.
    """
    row = _lookup(session, plain)
    now = utcnow()
    _check(row, now)
    result = session.execute(
        update(InitialAccessToken)
        .where(InitialAccessToken.id == row.id,
               InitialAccessToken.revoked_at.is_(None),
               or_(InitialAccessToken.expires_at.is_(None),
                   InitialAccessToken.expires_at > now),
               or_(InitialAccessToken.uses_left.is_(None),
                   InitialAccessToken.uses_left > 0))
        .values(uses_left=InitialAccessToken.uses_left - 1)
        .execution_options(synchronize_session=False))
    if (result.rowcount or 0) != 1:
        session.expire(row)
        _check(row, now)  # says why (revoked, expired or exhausted meanwhile)
        raise InitialTokenExhausted()
    session.expire(row, ["uses_left"])
    return row


def list_initial_tokens(session: Session, *, organisation: Organisation | None = None,
                        include_revoked: bool = True) -> list[InitialAccessToken]:
    stmt = select(InitialAccessToken).order_by(InitialAccessToken.id)
    if organisation is not None:
        stmt = stmt.where(InitialAccessToken.organisation_id == organisation.id)
    if not include_revoked:
        stmt = stmt.where(InitialAccessToken.revoked_at.is_(None))
    return list(session.scalars(stmt))


def token_state(row: InitialAccessToken, now: dt.datetime | None = None) -> str:
    """``usable``, ``revoked``, ``expired`` or ``exhausted``."""
    try:
        _check(row, now or utcnow())
    except InitialTokenRevoked:
        return "revoked"
    except InitialTokenExpired:
        return "expired"
    except InitialTokenExhausted:
        return "exhausted"
    return "usable"


def revoke_initial_token(session: Session, token_id: int, *, actor: str) -> InitialAccessToken:
    """Stop a token (clients registered with it stay). The caller commits."""
    row = session.get(InitialAccessToken, token_id)
    if row is None:
        raise InitialTokenUsageError(f"no initial access token with id {token_id}")
    if row.revoked_at is not None:
        raise InitialTokenUsageError(f"initial access token {token_id} is already revoked")
    row.revoked_at = utcnow()
    record(session, AuditTag.INITIAL_TOKEN_REVOKED, actor=actor,
           details={"initial_token_id": row.id, "organisation_id": row.organisation_id})
    session.flush()
    return row
