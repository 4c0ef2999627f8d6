"""Operator login: password, then TOTP (enrolled at the first login), in the server-side session.

Operator state lives under its own session keys, never Flask-Login's (that is for citizens):

* ``operator_pending`` = ``{"id", "time", "enrol"}`` after a correct password, until the code;
* ``operator`` = ``{"id", "time", "amr": ["pwd", "otp"], "seen"}`` once logged in; the session
  id is rotated at that moment.

Limits of the *substantial* level: 30 minutes idle, 2 hours absolute; the password step is only
valid for 5 minutes. Failed passwords and codes are throttled exactly like citizen logins
(``servicekonto.throttle``, per account key and per IP), in their own counters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flask import session
from sqlalchemy.orm import Session

from servicekonto.accounts import passwords
from servicekonto.audit import AuditTag, record
from servicekonto.portals import services
from servicekonto.portals.models import Operator
from servicekonto.sessions.timed import timed_state
from servicekonto.throttle import FailedLoginThrottle

#: Counters "operator-login-account" / "operator-login-ip", apart from the citizens'.
THROTTLE = FailedLoginThrottle("operator-login")
SESSION_KEY = "operator"
PENDING_KEY = "operator_pending"
IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 2 * 60 * 60
PENDING_SECONDS = 5 * 60
SEEN_INTERVAL = 60


class LoginBlocked(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed attempts")
        self.retry_after = retry_after


class LoginFailed(Exception):
    def __init__(self, retry_after: int | None = None) -> None:
        super().__init__("wrong e-mail address, password or code")
        self.retry_after = retry_after


def _fail(db: Session, email: str, ip: str, operator: Operator | None, reason: str) -> None:
    """Count and audit one failure; raises LoginFailed (with the wait if now blocked)."""
    locked_now, wait = THROTTLE.count_failure(email, ip)
    details: dict[str, Any] = {"reason": reason,
                               "operator_id": operator.id if operator else None}
    record(db, AuditTag.OPERATOR_LOGIN_FAILURE, actor="anonymous", details=details)
    if locked_now:
        record(db, AuditTag.OPERATOR_LOGIN_LOCKED, actor="system",
               details={"operator_id": operator.id if operator else None, "retry_after": wait})
    raise LoginFailed(wait)


def check_password(db: Session, email: str, password: str, *, ip: str) -> Operator:
    """First step. Raises LoginBlocked or LoginFailed (after auditing)."""
    wait = THROTTLE.blocked_for(email, ip)
    if wait:
        raise LoginBlocked(wait)
    operator = services.find_operator(db, email)
    if operator is None:
        passwords.burn_verify_time(password)
        _fail(db, email, ip, None, "unknown_account")
    assert operator is not None
    if not passwords.verify_password(operator.password_hash, password):
        _fail(db, email, ip, operator, "wrong_password")
    if operator.disabled_at is not None:
        _fail(db, email, ip, operator, "disabled")
    if passwords.needs_rehash(operator.password_hash):
        operator.password_hash = passwords.hash_password(password)
    return operator


def check_code(db: Session, operator: Operator, code: str, *, ip: str, enrol: bool) -> None:
    """Second step (or enrolment confirmation). Raises LoginBlocked or LoginFailed."""
    wait = THROTTLE.blocked_for(operator.email, ip)
    if wait:
        raise LoginBlocked(wait)
    if operator.disabled_at is not None:
        _fail(db, operator.email, ip, operator, "disabled")
    if enrol:
        ok = services.confirm_enrolment(db, operator, code)
    else:
        ok = operator.totp_confirmed_at is not None and services.check_totp(operator, code)
    if not ok:
        _fail(db, operator.email, ip, operator, "wrong_totp")
    THROTTLE.clear_account(operator.email)
    record(db, AuditTag.OPERATOR_LOGIN_SUCCESS, actor=services.actor_of(operator),
           details={"operator_id": operator.id, "amr": ["pwd", "otp"], "role": operator.role})


# -- session state ------------------------------------------------------------------------------

def begin(operator: Operator) -> None:
    """The password was right: remember who is half-way through the login."""
    session.pop(SESSION_KEY, None)
    session[PENDING_KEY] = {"id": operator.id, "time": int(time.time()),
                            "enrol": operator.totp_confirmed_at is None}


def pending() -> dict[str, Any] | None:
    return timed_state(PENDING_KEY, PENDING_SECONDS)


def establish(operator: Operator) -> None:
    """Logged in: new session id (against fixation), then the operator's state."""
    session.pop(PENDING_KEY, None)
    session.rotate()  # type: ignore[attr-defined]
    now = int(time.time())
    session[SESSION_KEY] = {"id": operator.id, "time": now, "amr": ["pwd", "otp"], "seen": now}


@dataclass(frozen=True)
class OperatorState:
    operator_id: int
    auth_time: int
    amr: tuple[str, ...]


def current() -> tuple[OperatorState | None, bool]:
    """The logged-in operator state and whether a previous operator session just expired."""
    state = session.get(SESSION_KEY)
    if not isinstance(state, dict):
        return None, False
    now = int(time.time())
    if now - int(state.get("time", 0)) > ABSOLUTE_SECONDS or \
            now - int(state.get("seen", 0)) > IDLE_SECONDS:
        session.pop(SESSION_KEY, None)
        return None, True
    if now - int(state.get("seen", 0)) >= SEEN_INTERVAL:
        session[SESSION_KEY] = {**state, "seen": now}
    return OperatorState(int(state["id"]), int(state["time"]), tuple(state.get("amr") or ())), \
        False


def end() -> None:
    session.pop(SESSION_KEY, None)
    session.pop(PENDING_KEY, None)
    if not session:
        session.destroy()  # type: ignore[attr-defined]
    else:
        session.rotate()  # type: ignore[attr-defined]
