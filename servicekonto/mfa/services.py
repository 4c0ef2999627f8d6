"""Rules for citizen TOTP and recovery codes. Each function adds to the caller's session and
audits there; the caller commits (and then sends mail).

* One authenticator app per citizen. Enrolment keeps an unconfirmed seed until a code from the
  app confirms it; only then does it count (``FactorKind.count``) and ten new recovery codes
  are made (shown once).
* Recovery codes: 16 base32 characters (80 bits), shown as ``ABCD-EFGH-IJKL-MNOP``; stored as
  SHA-256 (see ``servicekonto.mfa.models`` for why not Argon2); each works once.

Example::

    secret = start_totp(session, user)           # QR code / manual key from it
    codes = confirm_totp(session, user, "123456")  # None if the code is wrong
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from servicekonto.accounts.models import User
from servicekonto.audit import AuditTag, record
from servicekonto.db import utcnow
from servicekonto.mfa import factors, stored
from servicekonto.mfa.models import RecoveryCode, TotpFactor

RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_BYTES = 10  # 80 bits -> 16 base32 characters


class AlreadyEnrolled(Exception):
    """The citizen has a confirmed authenticator app already (remove it first)."""


def _owner(user_id: int) -> str:
    return f"citizen-totp:{user_id}"


def _actor(user: User) -> str:
    return f"citizen:{user.id}"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


# -- TOTP ------------------------------------------------------------------------------------

def totp_factor(session: Session, user_id: int) -> TotpFactor | None:
    return session.scalar(select(TotpFactor).where(TotpFactor.user_id == user_id))


def count_totp_select(user_id: Any) -> Any:  # noqa: ANN401 - SQL expressions
    """Confirmed TOTP factors of ``user_id`` (a column or bind) as a scalar subquery."""
    return (select(func.count(TotpFactor.id))
            .where(TotpFactor.user_id == user_id, TotpFactor.confirmed_at.is_not(None))
            .scalar_subquery())


def count_totp(session: Session, user_id: int) -> int:
    return session.scalar(select(count_totp_select(user_id))) or 0


def start_totp(session: Session, user: User) -> str:
    """The seed to show (a new one unless an unconfirmed one is waiting)."""
    row = totp_factor(session, user.id)
    if row is not None and row.confirmed_at is not None:
        raise AlreadyEnrolled()
    if row is None:
        row = TotpFactor(user_id=user.id)
        session.add(row)
    return stored.ensure_secret(row, _owner(user.id))


def confirm_totp(session: Session, user: User, code: str | None) -> list[str] | None:
    """Confirm the waiting seed with a code: the new recovery codes, or None (wrong code)."""
    row = totp_factor(session, user.id)
    if row is None or row.confirmed_at is not None:
        return None
    if not stored.check_code(row, _owner(user.id), code):
        return None
    row.confirmed_at = row.last_used_at = utcnow()
    record(session, AuditTag.ACCOUNT_TOTP_ENROLLED, actor=_actor(user),
           subject_user_id=user.id)
    return new_recovery_codes(session, user, reason="totp_enrolled")


def verify_totp(session: Session, user: User, code: str | None) -> bool:
    """A code of the confirmed app, newer than the last one used (replay refused)."""
    row = totp_factor(session, user.id)
    if row is None or row.confirmed_at is None:
        return False
    if not stored.check_code(row, _owner(user.id), code):
        return False
    row.last_used_at = utcnow()
    return True


def remove_totp(session: Session, user: User, *, actor: str | None = None) -> bool:
    """Forget the app (confirmed or not). The caller checked ``factors.may_remove``."""
    row = totp_factor(session, user.id)
    if row is None:
        return False
    confirmed = row.confirmed_at is not None
    session.delete(row)
    if confirmed:
        record(session, AuditTag.ACCOUNT_TOTP_REMOVED, actor=actor or _actor(user),
               subject_user_id=user.id)
    if factors.total_enrolled(session, user.id) == 0:
        drop_recovery_codes(session, user.id)  # nothing left for them to replace
    return confirmed


def _remove_all_totp(session: Session, user_id: int) -> int:
    return session.execute(delete(TotpFactor).where(TotpFactor.user_id == user_id)).rowcount


def _export_totp(session: Session, user_id: int) -> list[dict[str, Any]]:
    row = totp_factor(session, user_id)
    if row is None or row.confirmed_at is None:
        return []
    return [{"created_at": _iso(row.confirmed_at), "last_used_at": _iso(row.last_used_at)}]


# -- recovery codes --------------------------------------------------------------------------

def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalize_recovery_code(code: str | None) -> str:
    """Upper case, without spaces and hyphens (people type them either way)."""
    return "".join((code or "").split()).replace("-", "").upper()


def _format(raw: str) -> str:
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def drop_recovery_codes(session: Session, user_id: int) -> int:
    return session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id)).rowcount


def new_recovery_codes(session: Session, user: User, *, reason: str) -> list[str]:
    """Replace every recovery code with ten new ones; returns them (shown once, never again)."""
    drop_recovery_codes(session, user.id)
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = base64.b32encode(secrets.token_bytes(RECOVERY_CODE_BYTES)).decode()
        session.add(RecoveryCode(user_id=user.id, code_hash=_hash(raw)))
        codes.append(_format(raw))
    record(session, AuditTag.ACCOUNT_RECOVERY_CODES_CREATED, actor=_actor(user),
           subject_user_id=user.id, details={"count": RECOVERY_CODE_COUNT, "reason": reason})
    return codes


def recovery_codes_left(session: Session, user_id: int) -> int:
    return session.scalar(select(func.count(RecoveryCode.id)).where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))) or 0


def use_recovery_code(session: Session, user: User, code: str | None) -> bool:
    """Spend one unused code of this citizen (compared in constant time); audited."""
    wanted = _hash(normalize_recovery_code(code))
    rows = session.scalars(select(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)))
    match = None
    for row in rows:
        if hmac.compare_digest(row.code_hash, wanted):
            match = row
    if match is None:
        return False
    match.used_at = utcnow()
    session.flush()
    left = recovery_codes_left(session, user.id)
    record(session, AuditTag.ACCOUNT_RECOVERY_CODE_USED, actor=_actor(user),
           subject_user_id=user.id, details={"left": left})
    return True


# -- everything at once (administrator reset, data export) -------------------------------------

def reset_second_factors(session: Session, user: User, *, actor: str) -> dict[str, int]:
    """Remove every factor of every kind and the recovery codes (lost phone *and* codes)."""
    removed = {k.name: k.remove_all(session, user.id) for k in factors.kinds()
               if k.remove_all is not None}
    removed["recovery_codes"] = drop_recovery_codes(session, user.id)
    # kinds as values: the audit refuses keys like "totp" (they look like secrets)
    record(session, AuditTag.ACCOUNT_SECOND_FACTORS_RESET, actor=actor,
           subject_user_id=user.id,
           details={"removed": [{"kind": k, "count": n} for k, n in removed.items()]})
    return removed


def erase_factors(session: Session, user_id: int) -> None:
    """Account deletion: every factor of every kind and the recovery codes, without audit
    (the deletion is audited as a whole)."""
    for k in factors.kinds():
        if k.remove_all is not None:
            k.remove_all(session, user_id)
    drop_recovery_codes(session, user_id)


def export_factors(session: Session, user_id: int) -> dict[str, Any]:
    """Kinds, creation and last use, never secrets or code hashes."""
    rows = []
    for k in factors.kinds():
        if k.export is not None:
            rows.extend({"kind": k.name, **item} for item in k.export(session, user_id))
    codes = session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = list(codes)
    return {"factors": rows, "recovery_codes": {
        "created_at": _iso(min((c.created_at for c in codes), default=None)),
        "unused": sum(1 for c in codes if c.used_at is None),
        "used_at": [_iso(c.used_at) for c in codes if c.used_at is not None]}}


def totp_kind() -> factors.FactorKind:
    from flask_babel import lazy_gettext as _l

    from servicekonto.mfa.forms import TotpCodeForm

    return factors.FactorKind(
        name="totp", amr="otp", label=_l("Authenticator app"), count=count_totp,
        login_template="mfa/totp_login.html", console_template="mfa/totp_console.html",
        login_form=TotpCodeForm, export=_export_totp, remove_all=_remove_all_totp,
        count_select=count_totp_select)
