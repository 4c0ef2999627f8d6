"""Rules for passkeys: registration and sign-in ceremonies (py_webauthn), rename, removal, export.

Like the other services, every function takes the SQLAlchemy session explicitly, adds its audit
events to it and leaves the commit to the caller. A rejected ceremony raises
:class:`PasskeyRejected` *after* auditing the failure, so the caller commits that event too.

Challenges live in the server-side session under :data:`CHALLENGE_KEY`: one at a time, bound to
the account and the ceremony ("register" or "login"), valid for :data:`CHALLENGE_SECONDS` and
removed by the first verification attempt, successful or not (single use).

The relying party is the issuer: RP ID = its host name, expected origin = its scheme, host and
port. A counter that does not increase (for an authenticator that counts) is refused: it is the
sign of a cloned authenticator (WebAuthn §6.1.1).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, session
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from servicekonto.accounts.models import User
from servicekonto.audit import AuditTag, record
from servicekonto.db import utcnow
from servicekonto.passkeys.models import NAME_MAX, Passkey
from servicekonto.settings import current_settings

CHALLENGE_KEY = "passkey_challenge"
CHALLENGE_SECONDS = 120
#: What the browser is told (milliseconds); shorter than the challenge's life.
TIMEOUT_MS = 90_000
#: Set by the password confirmation before a registration (see ``registration_ticket``).
TICKET_KEY = "passkey_registration"
#: How long a password confirmation allows registering a passkey.
TICKET_SECONDS = 300
REGISTER = "register"
LOGIN = "login"
_TRANSPORTS = frozenset(t.value for t in AuthenticatorTransport)


class PasskeyRejected(Exception):
    """A ceremony that did not verify. ``reason`` is a short code for the audit log and for
    choosing the message: ``challenge`` (missing, expired or used), ``malformed``, ``invalid``
    (signature, origin, RP ID, ...), ``unknown`` (not a passkey of this account),
    ``duplicate`` (already registered), ``sign_count`` (counter went backwards)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFound(Exception):
    """No passkey with this id belongs to the citizen."""


@dataclass(frozen=True)
class RelyingParty:
    id: str
    origin: str
    name: str


def relying_party() -> RelyingParty:
    """The issuer as WebAuthn relying party (its host is the RP ID, its origin the origin)."""
    issuer = urlsplit(current_settings()["issuer"])
    return RelyingParty(id=issuer.hostname or "localhost",
                        origin=f"{issuer.scheme}://{issuer.netloc}", name="Servicekonto")


def user_handle(user: User) -> bytes:
    """WebAuthn's user.id: stable per account, but neither the row id nor the e-mail address
    (it is stored on the authenticator and may be shown to other parties)."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"passkey-user-handle:{user.id}".encode(), hashlib.sha256).digest()


# -- reading -----------------------------------------------------------------------------------

def passkeys_of(db: Session, user_id: int) -> list[Passkey]:
    return list(db.scalars(select(Passkey).where(Passkey.user_id == user_id)
                           .order_by(Passkey.created_at, Passkey.id)))


def count_select(user_id: Any) -> Any:  # noqa: ANN401 - SQL expressions
    """Enrolled passkeys of ``user_id`` (a column or bind) as a scalar subquery (the
    FactorKind's ``count_select``)."""
    return select(func.count(Passkey.id)).where(Passkey.user_id == user_id).scalar_subquery()


def count(db: Session, user_id: int) -> int:
    """Enrolled passkeys (the FactorKind's ``count``)."""
    return db.scalar(select(count_select(user_id))) or 0


def get(db: Session, user: User, passkey_id: int) -> Passkey:
    passkey = db.get(Passkey, passkey_id)
    if passkey is None or passkey.user_id != user.id:
        raise NotFound()
    return passkey


def export(db: Session, user_id: int) -> list[dict[str, Any]]:
    """The rows of the data export (``FactorKind.export``): names and times, never key
    material or credential ids."""
    return [{"name": p.name, "created_at": p.created_at.isoformat(),
             "last_used_at": p.last_used_at.isoformat() if p.last_used_at else None,
             "transports": list(p.transports or [])}
            for p in passkeys_of(db, user_id)]


def remove_all(db: Session, user_id: int) -> int:
    """Every passkey of the account (``FactorKind.remove_all``: the administrator's reset)."""
    return db.execute(delete(Passkey).where(Passkey.user_id == user_id)).rowcount or 0


# -- challenges --------------------------------------------------------------------------------

def _remember(purpose: str, user_id: int, challenge: bytes) -> None:
    session[CHALLENGE_KEY] = {"purpose": purpose, "user_id": user_id,
                              "challenge": bytes_to_base64url(challenge),
                              "expires": time.time() + CHALLENGE_SECONDS}


def _take(purpose: str, user_id: int) -> bytes | None:
    """The pending challenge of this ceremony and account, removed (single use)."""
    stored = session.pop(CHALLENGE_KEY, None)
    if (not isinstance(stored, dict) or stored.get("purpose") != purpose
            or stored.get("user_id") != user_id
            or float(stored.get("expires", 0)) < time.time()):
        return None
    return base64url_to_bytes(stored["challenge"])


def _descriptors(passkeys: list[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(p.credential_id),
        transports=[AuthenticatorTransport(t) for t in p.transports or [] if t in _TRANSPORTS])
        for p in passkeys]


def _parse(credential: str) -> dict[str, Any]:
    try:
        parsed = json.loads(credential)
    except (TypeError, ValueError):
        raise PasskeyRejected("malformed") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("id"), str):
        raise PasskeyRejected("malformed")
    return parsed


def _failed(db: Session, user: User, reason: str, during: str,
            passkey: Passkey | None = None) -> PasskeyRejected:
    details: dict[str, Any] = {"reason": reason, "during": during}
    if passkey is not None:
        details["passkey"] = passkey.id
    record(db, AuditTag.PASSKEY_FAILED, actor=f"citizen:{user.id}", subject_user_id=user.id,
           details=details)
    return PasskeyRejected(reason)


# -- registration ------------------------------------------------------------------------------

def registration_options(db: Session, user: User) -> str:
    """Options for ``navigator.credentials.create()`` as JSON; remembers the challenge.

    Resident keys and user verification are preferred (a passkey), not required, so security
    keys without a PIN still work as a second factor. The account's passkeys are excluded so
    the same authenticator is not registered twice.
    """
    rp = relying_party()
    options = generate_registration_options(
        rp_id=rp.id, rp_name=rp.name, user_id=user_handle(user), user_name=user.email,
        user_display_name=user.full_name, timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED),
        exclude_credentials=_descriptors(passkeys_of(db, user.id)))
    _remember(REGISTER, user.id, options.challenge)
    return options_to_json(options)


def _challenge_and_answer(db: Session, user: User, ceremony: str,
                          credential: str) -> tuple[bytes, dict[str, Any]]:
    """The ceremony's challenge (taken: single use) and the browser's parsed answer; a missing
    challenge or a malformed answer is a rejection, audited."""
    challenge = _take(ceremony, user.id)
    if challenge is None:
        raise _failed(db, user, "challenge", ceremony)
    try:
        return challenge, _parse(credential)
    except PasskeyRejected:
        raise _failed(db, user, "malformed", ceremony) from None


def register(db: Session, user: User, name: str, credential: str) -> Passkey:
    """Verify the browser's answer to the registration options and store the passkey."""
    challenge, parsed = _challenge_and_answer(db, user, REGISTER, credential)
    rp = relying_party()
    try:
        verified = verify_registration_response(
            credential=parsed, expected_challenge=challenge, expected_rp_id=rp.id,
            expected_origin=rp.origin)
    except Exception:  # noqa: BLE001 - any parse or verification error is a rejection
        raise _failed(db, user, "invalid", REGISTER) from None
    credential_id = bytes_to_base64url(verified.credential_id)
    if db.scalar(select(Passkey.id).where(Passkey.credential_id == credential_id)) is not None:
        raise _failed(db, user, "duplicate", REGISTER)
    transports = (parsed.get("response") or {}).get("transports") or []
    passkey = Passkey(
        user_id=user.id, credential_id=credential_id,
        public_key=verified.credential_public_key, sign_count=verified.sign_count,
        transports=sorted({t for t in transports if isinstance(t, str) and t in _TRANSPORTS}),
        aaguid=verified.aaguid, backed_up=verified.credential_backed_up,
        name=clean_name(name))
    db.add(passkey)
    db.flush()
    record(db, AuditTag.PASSKEY_REGISTERED, actor=f"citizen:{user.id}", subject_user_id=user.id,
           details={"passkey": passkey.id, "aaguid": verified.aaguid,
                    "user_verified": verified.user_verified})
    return passkey


# -- sign-in (second factor) -------------------------------------------------------------------

def authentication_options(db: Session, user: User) -> str:
    """Options for ``navigator.credentials.get()`` limited to the account's passkeys."""
    passkeys = passkeys_of(db, user.id)
    if not passkeys:
        raise PasskeyRejected("unknown")
    options = generate_authentication_options(
        rp_id=relying_party().id, timeout=TIMEOUT_MS, allow_credentials=_descriptors(passkeys),
        user_verification=UserVerificationRequirement.PREFERRED)
    _remember(LOGIN, user.id, options.challenge)
    return options_to_json(options)


def authenticate(db: Session, user: User, credential: str) -> Passkey:
    """Verify an assertion for ``user``; update the counter and the time of last use."""
    challenge, parsed = _challenge_and_answer(db, user, LOGIN, credential)
    passkey = db.scalar(select(Passkey).where(Passkey.user_id == user.id,
                                              Passkey.credential_id == parsed["id"]))
    if passkey is None:
        raise _failed(db, user, "unknown", LOGIN)
    rp = relying_party()
    try:
        # The counter is compared below (not by py_webauthn) so that a cloned authenticator
        # is told apart from a bad signature in the audit log.
        verified = verify_authentication_response(
            credential=parsed, expected_challenge=challenge, expected_rp_id=rp.id,
            expected_origin=rp.origin, credential_public_key=passkey.public_key,
            credential_current_sign_count=0)
    except Exception:  # noqa: BLE001 - any parse or verification error is a rejection
        raise _failed(db, user, "invalid", LOGIN, passkey) from None
    new_count = verified.new_sign_count
    if (new_count or passkey.sign_count) and new_count <= passkey.sign_count:
        raise _failed(db, user, "sign_count", LOGIN, passkey)
    passkey.sign_count = new_count
    passkey.last_used_at = utcnow()
    record(db, AuditTag.PASSKEY_USED, actor=f"citizen:{user.id}", subject_user_id=user.id,
           details={"passkey": passkey.id, "user_verified": verified.user_verified})
    return passkey


# -- managing ----------------------------------------------------------------------------------

def clean_name(name: str | None) -> str:
    """Collapse whitespace; the form already checked the length."""
    return " ".join((name or "").split())[:NAME_MAX]


def default_name(db: Session, user_id: int) -> str:
    """A suggestion for the next passkey's name ("Passkey 2")."""
    from flask_babel import gettext as _

    return _("Passkey %(n)d", n=count(db, user_id) + 1)


def rename(db: Session, user: User, passkey_id: int, name: str) -> Passkey:
    passkey = get(db, user, passkey_id)
    new_name = clean_name(name)
    if new_name != passkey.name:
        passkey.name = new_name
        record(db, AuditTag.PASSKEY_RENAMED, actor=f"citizen:{user.id}",
               subject_user_id=user.id, details={"passkey": passkey.id})
    return passkey


def remove(db: Session, user: User, passkey_id: int) -> None:
    """Delete the passkey (the caller checked ``factors.may_remove`` and the password). With
    the last factor of any kind gone, the recovery codes go too (nothing left to replace)."""
    from servicekonto.mfa import factors
    from servicekonto.mfa.services import drop_recovery_codes

    passkey = get(db, user, passkey_id)
    record(db, AuditTag.PASSKEY_REMOVED, actor=f"citizen:{user.id}", subject_user_id=user.id,
           details={"passkey": passkey.id, "remaining": count(db, user.id) - 1})
    db.delete(passkey)
    db.flush()
    if factors.total_enrolled(db, user.id) == 0:
        drop_recovery_codes(db, user.id)


def registration_ticket(user: User, name: str) -> None:
    """After the password check: the browser may now create a passkey for a few minutes."""
    session[TICKET_KEY] = {"user_id": user.id, "name": clean_name(name),
                           "expires": time.time() + TICKET_SECONDS}


def pending_registration(user: User) -> str | None:
    """The name of the passkey the citizen is allowed to register now, or None."""
    ticket = session.get(TICKET_KEY)
    if (not isinstance(ticket, dict) or ticket.get("user_id") != user.id
            or float(ticket.get("expires", 0)) < time.time()):
        return None
    return str(ticket.get("name") or "")


def end_registration() -> None:
    session.pop(TICKET_KEY, None)
    session.pop(CHALLENGE_KEY, None)

