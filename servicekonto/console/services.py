"""Rules of the account console. Every function takes the SQLAlchemy session explicitly, adds
its audit events to it and leaves the commit to the caller (view), like the account services.

Session-store work (ending sessions) happens *before* the caller writes to the database: on
SQLite the store uses its own connection and must not wait for the request's write lock.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from oidc.models import Client, Token
from servicekonto.accounts.login_session import logged_out
from servicekonto.accounts.models import User
from servicekonto.accounts.trust_levels import LOA_HIGH, LOA_LOW, LOA_SUBSTANTIAL
from servicekonto.audit import AuditTag, record
from servicekonto.audit.models import AuditEvent
from servicekonto.consent import service as consent_service
from servicekonto.consent.models import Consent
from servicekonto.db import utcnow
from servicekonto.mfa.services import erase_factors, export_factors
from servicekonto.sessions.stores import SessionRecord

# -- labels ----------------------------------------------------------------------------------

#: Claims a citizen sees (and withdraws) together, in the order of the consent page.
CLAIM_GROUPS: dict[str, tuple[str, ...]] = {
    "name": ("name", "given_name", "family_name"),
    "birthdate": ("birthdate",),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
    "locale": ("locale",),
    "updated_at": ("updated_at",),
}
GROUP_LABELS = {
    "name": _l("First and last name"),
    "birthdate": _l("Date of birth"),
    "email": _l("E-mail address"),
    "address": _l("Postal address"),
    "phone": _l("Telephone number"),
    "locale": _l("Preferred language"),
    "updated_at": _l("When your data was last changed"),
}
CLAIM_LABELS = {
    "sub": _l("Pseudonymous identifier"),
    "name": _l("Full name"),
    "given_name": _l("First name"),
    "family_name": _l("Last name"),
    "birthdate": _l("Date of birth"),
    "email": _l("E-mail address"),
    "email_verified": _l("E-mail address confirmed"),
    "address": _l("Postal address"),
    "phone_number": _l("Telephone number"),
    "phone_number_verified": _l("Telephone number confirmed"),
    "locale": _l("Preferred language"),
    "updated_at": _l("When your data was last changed"),
}
ACR_LABELS = {
    LOA_LOW: _l("basic"),
    LOA_SUBSTANTIAL: _l("substantial"),
    LOA_HIGH: _l("high"),
}
PROFILE_FIELDS = ("given_name", "family_name", "birthdate", "street_address", "postal_code",
                  "locality", "country", "phone_number")
SIGN_IN_TAGS = (AuditTag.ACCOUNT_LOGIN_SUCCESS, AuditTag.ACCOUNT_LOGIN_FAILURE,
                AuditTag.ACCOUNT_LOGIN_LOCKED)


def claim_label(name: str) -> str:
    label = CLAIM_LABELS.get(name)
    return str(label) if label is not None else name


def acr_label(acr: str | None) -> str:
    if not acr:
        return "–"
    label = ACR_LABELS.get(acr)
    return str(label) if label is not None else acr


def portal_name(client: Client | None, locale: str, fallback: str = "") -> str:
    if client is None:
        return fallback
    return (client.client_name_i18n or {}).get(locale) or client.client_name


def groups_of(claims: Iterable[str]) -> list[str]:
    """The claim groups that ``claims`` touch, in display order."""
    names = set(claims)
    return [group for group, members in CLAIM_GROUPS.items() if names & set(members)]


class ConsoleError(Exception):
    """A rule was broken; ``str()`` is fit for the citizen."""


class NotFound(ConsoleError):
    pass


def about(user: User) -> list[Any]:
    """Audit entries about ``user``: their id, and not older than the account. On SQLite an
    id can be reused after the newest account was deleted (no AUTOINCREMENT); the time bound
    keeps a deleted person's entries out of a later account's console."""
    conditions: list[Any] = [AuditEvent.subject_user_id == user.id]
    if user.created_at is not None:
        conditions.append(AuditEvent.occurred_at >= user.created_at)
    return conditions


# -- profile ---------------------------------------------------------------------------------

def update_profile(session: Session, user: User, values: dict[str, Any]) -> list[str]:
    """Apply the changed profile fields (already validated) and audit their *names*."""
    changed = []
    for name in PROFILE_FIELDS:
        if name not in values:
            continue
        new = values[name]
        if isinstance(new, str):
            new = new.strip() or None
        if name in ("given_name", "family_name") and not new:
            continue  # required; the form checked it
        if getattr(user, name) != new:
            setattr(user, name, new)
            changed.append(name)
    if changed:
        user.updated_at = utcnow()
        record(session, AuditTag.ACCOUNT_PROFILE_UPDATED, actor=f"citizen:{user.id}",
               subject_user_id=user.id, details={"fields": changed})
    return changed


# -- connected portals -----------------------------------------------------------------------

@dataclass
class ConnectedPortal:
    client: Client
    consent: Consent
    groups: list[str]
    offline: bool


def connected_portals(session: Session, user_id: int) -> list[ConnectedPortal]:
    """Portals with a standing consent (``openid`` granted), newest grant first."""
    rows = session.execute(
        select(Consent, Client).join(Client, Client.id == Consent.client_pk)
        .where(Consent.user_id == user_id).order_by(Consent.granted_at.desc(), Consent.id)).all()
    out = []
    for consent, client in rows:
        if "openid" not in (consent.granted_scopes or []):
            continue
        out.append(ConnectedPortal(client, consent, groups_of(consent.granted_claims or []),
                                   "offline_access" in (consent.granted_scopes or [])))
    return out


def connected_portal(session: Session, user_id: int, client_id: str) -> ConnectedPortal:
    for portal in connected_portals(session, user_id):
        if portal.client.client_id == client_id:
            return portal
    raise NotFound(client_id)


def withdraw_portal(session: Session, user: User, client_id: str) -> int:
    """Withdraw the whole consent: tokens revoked, back-channel logout queued, audited."""
    portal = connected_portal(session, user.id, client_id)
    return consent_service.withdraw(session, user_id=user.id, client=portal.client)


def withdraw_group(session: Session, user: User, client_id: str, group: str) -> int:
    """Withdraw one piece of data (a claim group) from a portal's consent."""
    portal = connected_portal(session, user.id, client_id)
    if group not in portal.groups:
        raise NotFound(group)
    return consent_service.withdraw_claims(session, user_id=user.id, client=portal.client,
                                           claims=CLAIM_GROUPS[group])


# -- disclosure log --------------------------------------------------------------------------

@dataclass
class Disclosure:
    occurred_at: dt.datetime
    client_id: str
    portal: str
    via: str
    claims: list[str]
    acr: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"time": self.occurred_at.isoformat(), "client_id": self.client_id,
                "portal": self.portal, "via": self.via, "claims": self.claims,
                "acr": self.acr}


def _period(start: dt.date | None, end: dt.date | None) -> list[Any]:
    conditions = []
    if start is not None:
        conditions.append(AuditEvent.occurred_at
                          >= dt.datetime.combine(start, dt.time(), dt.UTC))
    if end is not None:
        conditions.append(AuditEvent.occurred_at
                          < dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC))
    return conditions


def _acr_by_family(session: Session, user: User,
                   events: list[AuditEvent]) -> dict[int, str | None]:
    """acr for ID-token releases recorded without it: the token family issued in the same
    transaction (the OIDC_TOKEN_ISSUED/REFRESHED event just before, same portal) names the
    Token rows, which carry the acr of the login."""
    missing = [e for e in events if "acr" not in _details(e)]
    if not missing:
        return {}
    issued = session.scalars(
        select(AuditEvent).where(*about(user),
                                 AuditEvent.tag.in_([AuditTag.OIDC_TOKEN_ISSUED,
                                                     AuditTag.OIDC_TOKEN_REFRESHED]))
        .order_by(AuditEvent.id)).all()
    families: dict[int, str] = {}
    for event in missing:
        before = [i for i in issued if i.id < event.id and i.client_id == event.client_id]
        family = _details(before[-1]).get("family") if before else None
        if family:
            families[event.id] = family
    acrs = dict(session.execute(
        select(Token.family_id, Token.acr).where(Token.family_id.in_(set(families.values())))
    ).all()) if families else {}
    return {event_id: acrs.get(family) for event_id, family in families.items()}


def _details(event: AuditEvent) -> dict[str, Any]:
    try:
        value = json.loads(event.details or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def disclosures(session: Session, user: User, *, client_id: str | None = None,
                start: dt.date | None = None, end: dt.date | None = None,
                locale: str = "de", limit: int = 1000) -> list[Disclosure]:
    """Every release of claims (names) to a portal, newest first, from the audit log."""
    stmt = (select(AuditEvent)
            .where(*about(user), AuditEvent.tag == AuditTag.OIDC_CLAIMS_RELEASED,
                   *_period(start, end))
            .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc()).limit(limit))
    if client_id:
        stmt = stmt.where(AuditEvent.client_id == client_id)
    events = list(session.scalars(stmt))
    fallback = _acr_by_family(session, user, events)
    names = _client_names(session, {e.client_id for e in events if e.client_id}, locale)
    out = []
    for event in events:
        details = _details(event)
        out.append(Disclosure(
            occurred_at=event.occurred_at, client_id=event.client_id or "",
            portal=names.get(event.client_id or "", event.client_id or ""),
            via=str(details.get("via", "")), claims=list(details.get("claims") or []),
            acr=details.get("acr") or fallback.get(event.id)))
    return out


def disclosure_portals(session: Session, user: User, locale: str) -> list[tuple[str, str]]:
    """(client_id, name) of every portal that ever received data (for the filter)."""
    ids = set(session.scalars(
        select(AuditEvent.client_id).where(*about(user),
                                           AuditEvent.tag == AuditTag.OIDC_CLAIMS_RELEASED)
        .distinct()))
    ids.discard(None)
    names = _client_names(session, ids, locale)  # type: ignore[arg-type]
    return sorted(((cid, names.get(cid, cid)) for cid in ids), key=lambda p: p[1].lower())


def _client_names(session: Session, client_ids: set[str], locale: str) -> dict[str, str]:
    if not client_ids:
        return {}
    clients = session.scalars(select(Client).where(Client.client_id.in_(client_ids)))
    return {c.client_id: portal_name(c, locale) for c in clients}


CSV_COLUMNS = ("time", "client_id", "portal", "via", "claims", "acr")


def disclosures_csv(rows: list[Disclosure]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        data = row.as_dict()
        data["claims"] = " ".join(row.claims)
        writer.writerow([_csv_safe(str(data[c] or "")) for c in CSV_COLUMNS])
    return buffer.getvalue()


def _csv_safe(value: str) -> str:
    """No spreadsheet formulas from portal names (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


# -- sign-in history and sessions ------------------------------------------------------------

@dataclass
class SignIn:
    occurred_at: dt.datetime
    outcome: str  # success | failure | locked
    ip: str | None
    device: str | None
    reason: str | None


def sign_in_history(session: Session, user: User, *, known_devices: dict[str, str]
                    | None = None, limit: int = 100) -> list[SignIn]:
    """Logins, failures and lockouts of the account, newest first. The audit log holds only
    a hash of the User-Agent; where it matches a device we know (a live session, this
    browser) the device is named."""
    events = session.scalars(
        select(AuditEvent).where(*about(user),
                                 AuditEvent.tag.in_([str(t) for t in SIGN_IN_TAGS]))
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc()).limit(limit))
    outcome = {AuditTag.ACCOUNT_LOGIN_SUCCESS: "success", AuditTag.ACCOUNT_LOGIN_FAILURE:
               "failure", AuditTag.ACCOUNT_LOGIN_LOCKED: "locked"}
    devices = known_devices or {}
    return [SignIn(e.occurred_at, outcome[AuditTag(e.tag)], e.ip,
                   devices.get(e.user_agent_hash or ""), _details(e).get("reason"))
            for e in events]


@dataclass
class ActiveSession:
    sid: str
    device: str
    ip: str | None
    signed_in_at: dt.datetime | None
    last_seen_at: dt.datetime
    acr: str | None
    current: bool
    record: SessionRecord = field(repr=False)


def active_sessions(store: Any, user_id: int, current_key: str | None) -> list[ActiveSession]:
    out = []
    for rec in store.list_for_user(user_id):
        auth = rec.data.get("auth") or {}
        if not auth.get("sid"):
            continue
        signed_in = (dt.datetime.fromtimestamp(int(auth["time"]), dt.UTC)
                     if auth.get("time") else None)
        out.append(ActiveSession(auth["sid"], rec.data.get("device") or "unknown",
                                 rec.data.get("ip"), signed_in, rec.last_seen_at,
                                 auth.get("acr"), rec.key == current_key, rec))
    out.sort(key=lambda s: (not s.current, -(s.last_seen_at.timestamp())))
    return out


def end_sessions(app: Flask, store: Any, user_id: int, *, keep: str | None = None,
                 only_sid: str | None = None, notify: bool = True) -> list[SessionRecord]:
    """End the account's sessions in the store (all but ``keep``, or just ``only_sid``) and
    announce each ended login with ``logged_out`` so the provider queues back-channel logouts
    to that session's portals in the caller's transaction (the caller commits).

    The same steps as ``servicekonto users disable`` and the password pages.
    """
    if only_sid is not None:
        ended = []
        for rec in store.list_for_user(user_id):
            if (rec.data.get("auth") or {}).get("sid") == only_sid and rec.key != keep:
                store.delete(rec.key)
                ended.append(rec)
    else:
        ended = store.delete_for_user(user_id, keep=keep)
    if notify:
        for rec in ended:
            sid = (rec.data.get("auth") or {}).get("sid")
            if sid:
                logged_out.send(app, user_id=user_id, sid=sid)
    return ended


def record_sessions_ended(session: Session, user: User, count: int, scope: str) -> None:
    record(session, AuditTag.ACCOUNT_SESSIONS_ENDED, actor=f"citizen:{user.id}",
           subject_user_id=user.id, details={"sessions": count, "scope": scope})


def report_compromise(session: Session, user: User, sessions_ended: int) -> None:
    """Audit "this was not me"; the view keeps a flag in the session until the password is
    changed (see :func:`password_change_required`)."""
    record(session, AuditTag.ACCOUNT_COMPROMISE_REPORTED, actor=f"citizen:{user.id}",
           subject_user_id=user.id, details={"sessions_ended": sessions_ended})


def password_change_required(session: Session, user: User) -> bool:
    """True when the citizen reported "this was not me" and has not changed the password
    since (the audit event is the durable flag: no schema change)."""
    reported = session.scalar(
        select(AuditEvent.occurred_at)
        .where(*about(user), AuditEvent.tag == AuditTag.ACCOUNT_COMPROMISE_REPORTED)
        .order_by(AuditEvent.occurred_at.desc()).limit(1))
    return reported is not None and (user.password_changed_at is None
                                     or user.password_changed_at <= reported)


# -- my data ---------------------------------------------------------------------------------

def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else value


def export_data(session: Session, store: Any, user: User, *, current_key: str | None,
                locale: str = "de") -> dict[str, Any]:
    """Everything the Servicekonto holds about the citizen (DSGVO Art. 15/20), without
    secrets or hashes (password hash, token hashes, session keys, user-agent hashes, TOTP
    seeds, recovery-code hashes: second factors are listed by kind and dates only)."""
    account = {name: _iso(getattr(user, name)) for name in (
        "id", "email", "given_name", "family_name", "birthdate", "phone_number",
        "street_address", "postal_code", "locality", "country", "locale", "created_at",
        "updated_at", "password_changed_at", "email_verified_at", "disabled_at")}
    consents = []
    for consent, client in session.execute(
            select(Consent, Client).join(Client, Client.id == Consent.client_pk)
            .where(Consent.user_id == user.id).order_by(Consent.id)).all():
        consents.append({
            "client_id": client.client_id, "portal": portal_name(client, locale),
            "operator": client.operator, "granted_scopes": consent.granted_scopes or [],
            "granted_claims": consent.granted_claims or [],
            "refused_scopes": consent.refused_scopes or [],
            "refused_claims": consent.refused_claims or [],
            "granted_at": _iso(consent.granted_at), "updated_at": _iso(consent.updated_at)})
    tokens = []
    for token, client in session.execute(
            select(Token, Client).join(Client, Client.id == Token.client_pk)
            .where(Token.user_id == user.id).order_by(Token.id)).all():
        tokens.append({
            "client_id": client.client_id, "scope": token.scope.split(),
            "grant_type": token.grant_type, "has_refresh_token": bool(token.refresh_token_hash),
            "issued_at": _iso(token.issued_at), "access_expires_at":
            _iso(token.access_expires_at), "refresh_expires_at": _iso(token.refresh_expires_at),
            "rotated_at": _iso(token.rotated_at), "revoked_at": _iso(token.revoked_at),
            "acr": token.acr, "amr": token.amr or [], "auth_time": token.auth_time})
    sessions = [{"signed_in_at": _iso(s.signed_in_at), "last_seen_at": _iso(s.last_seen_at),
                 "device": s.device, "ip": s.ip, "acr": s.acr, "current": s.current}
                for s in active_sessions(store, user.id, current_key)]
    events = session.scalars(select(AuditEvent).where(*about(user))
                             .order_by(AuditEvent.id))
    audit = [{"time": _iso(e.occurred_at), "event": e.tag, "actor": e.actor,
              "client_id": e.client_id, "ip": e.ip, "details": _details(e)} for e in events]
    return {
        "format": "servicekonto-export/1",
        "exported_at": _iso(utcnow()),
        "account": account,
        "consents": consents,
        "sessions": sessions,
        "tokens": tokens,
        "disclosures": [d.as_dict() for d in disclosures(session, user, locale=locale,
                                                          limit=100000)],
        "sign_ins": [{"time": _iso(s.occurred_at), "outcome": s.outcome, "ip": s.ip,
                      "reason": s.reason}
                     for s in sign_in_history(session, user, limit=100000)],
        "second_factors": export_factors(session, user.id),
        "audit_events": audit,
    }


def portals_to_notify(session: Session, user_id: int) -> list[Client]:
    """Every portal with a consent row or tokens of the citizen."""
    consented = select(Consent.client_pk).where(Consent.user_id == user_id)
    with_tokens = select(Token.client_pk).where(Token.user_id == user_id)
    return list(session.scalars(select(Client).where(
        or_(Client.id.in_(consented), Client.id.in_(with_tokens))).order_by(Client.id)))


def delete_account(session: Session, user: User) -> list[str]:
    """Erase the account (DSGVO Art. 17): revoke every token, queue a back-channel logout to
    every portal with consent or tokens, audit ACCOUNT_DELETED, delete the ``users`` row
    (consents, codes, tokens and e-mail links go with it by ON DELETE CASCADE).

    The caller has ended the sessions in the store first and commits. Audit entries keep
    ``subject_user_id`` as a bare number (see docs/account-console.md).
    """
    from oidc.backchannel import queue_logout

    user_id = user.id
    clients = portals_to_notify(session, user_id)
    revoked = session.execute(
        update(Token).where(Token.user_id == user_id, Token.revoked_at.is_(None))
        .values(revoked_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    queue_logout(session, user_id=user_id, sid=None, clients=clients,
                 revoke_session_tokens=False)
    record(session, AuditTag.ACCOUNT_DELETED, actor=f"citizen:{user_id}",
           subject_user_id=user_id,
           details={"portals": [c.client_id for c in clients], "tokens_revoked": revoked or 0})
    session.flush()
    erase_factors(session, user_id)  # explicit, not only ON DELETE CASCADE (every factor kind)
    session.delete(user)
    session.flush()
    return [c.client_id for c in clients]

