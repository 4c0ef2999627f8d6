"""The contract between second-factor kinds (TOTP, passkeys, ...) and the sign-in machinery.

A factor package registers a :class:`FactorKind` in its ``init_app``; the second-factor sign-in
page (``/login/second-factor``) includes each enrolled kind's ``login_template`` (context:
``user``, ``next_url``, ``forms``) and the console security page (``/account/security``) each
``console_template``. Whoever verified a second factor calls :func:`finish`.

The *pending* state (``session["mfa_pending"]``) is the citizen between the password and the
second factor, or a signed-in citizen stepping up to LoA substantial::

    {"user_id": 7, "time": 1732300000, "next": "/authorize/resume/...", "step_up": false}

It never logs anybody in (Flask-Login's user is not set by it) and expires after
``PENDING_SECONDS``. Recovery codes are no kind of their own: they only replace a factor at the
second-factor step and do not count in :func:`total_enrolled`.

Example (a factor package)::

    register(FactorKind(name="totp", amr="otp", label=_l("Authenticator app"),
                        count=count_totp, login_template="mfa/totp_login.html",
                        console_template="mfa/totp_console.html"))
    user = pending_user()
    if user is not None and code_ok(user, code):
        return redirect(finish(user, method="totp", amr="otp"))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app, session, url_for
from flask_babel import LazyString
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from servicekonto.accounts import login_session
from servicekonto.accounts.models import User
from servicekonto.accounts.trust_levels import LOA_SUBSTANTIAL, rank
from servicekonto.audit import AuditTag, record
from servicekonto.sessions.timed import timed_state

PENDING_KEY = "mfa_pending"
#: The password step (or a started step-up) is valid this long.
PENDING_SECONDS = 5 * 60
METHODS = ("totp", "recovery_code", "passkey")
#: The console's security page (linked from mails, which may be sent outside a request).
SECURITY_PATH = "/account/security"


@dataclass(frozen=True)
class FactorKind:
    name: str                    # "totp" | "passkey"
    amr: str                     # RFC 8176 value: "otp" for TOTP, "hwk" for passkeys
    label: LazyString            # e.g. _l("Authenticator app")
    count: Callable[[Session, int], int]   # (db session, user_id) -> confirmed instances
    login_template: str          # Jinja partial included in the second-factor sign-in page
    console_template: str | None  # Jinja partial included in the console security page
    #: Optional: builds the kind's form for the second-factor page (``forms[name]``).
    login_form: Callable[[], Any] | None = None
    #: Optional: (db session, user_id) -> rows for the data export: dicts with "created_at",
    #: "last_used_at" (ISO strings or None) and e.g. "name"; never secrets.
    export: Callable[[Session, int], list[dict[str, Any]]] | None = None
    #: Optional: (db session, user_id) -> number removed; deletes every instance (the
    #: administrator's ``users reset-second-factors``). Audit and mail are the caller's.
    remove_all: Callable[[Session, int], int] | None = None
    #: Optional: user id (a column or bind parameter) -> a scalar subquery with what
    #: ``count`` returns. When every kind has one, :func:`total_enrolled` is one query, and a
    #: caller that reads the account anyway (the password login) gets the total in that same
    #: query (:func:`enrolled_total`).
    count_select: Callable[[Any], Any] | None = None


_KINDS: dict[str, FactorKind] = {}


def register(kind: FactorKind) -> None:
    """Idempotent by name (every app instance of a process calls it; the last one wins)."""
    _KINDS[kind.name] = kind


def kinds() -> list[FactorKind]:
    return list(_KINDS.values())


def kind(name: str) -> FactorKind | None:
    return _KINDS.get(name)


def enrolled(db_session: Session, user_id: int) -> list[FactorKind]:
    """The kinds the citizen has at least one confirmed instance of."""
    return [k for k in kinds() if k.count(db_session, user_id) > 0]


def enrolled_total(user_id: Any) -> Any:  # noqa: ANN401 - SQL expressions
    """Confirmed factors of every kind for ``user_id`` (a column or bind parameter) as one SQL
    expression, or None when a kind has no ``count_select``."""
    selects = [k.count_select for k in kinds()]
    if not selects or any(s is None for s in selects):
        return None
    total = selects[0](user_id)
    for count_select in selects[1:]:
        total = total + count_select(user_id)
    return total


def total_enrolled(db_session: Session, user_id: int) -> int:
    """Confirmed factors of every kind (recovery codes do not count): one query when every
    kind can say its count in SQL, else one per kind."""
    total = enrolled_total(bindparam("user_id"))
    if total is None:
        return sum(k.count(db_session, user_id) for k in kinds())
    return db_session.scalar(select(total), {"user_id": user_id}) or 0


# -- the pending step ------------------------------------------------------------------------

def begin(user: User, next_url: str, *, step_up: bool) -> None:
    """The password was right (or a signed-in citizen must step up): ask for a second factor.

    ``next_url`` must already be a safe same-site path (accounts.views.safe_next).
    """
    session[PENDING_KEY] = {"user_id": user.id, "time": int(time.time()), "next": next_url,
                            "step_up": bool(step_up)}


def _pending_state() -> dict[str, Any] | None:
    state = timed_state(PENDING_KEY, PENDING_SECONDS)
    if state is None:
        return None
    if state.get("step_up"):
        auth = login_session.current_auth()
        if auth is None or auth.user_id != state.get("user_id"):
            session.pop(PENDING_KEY, None)  # signed out (or someone else) since it started
            return None
    return state


def pending_user() -> User | None:
    """The citizen in the middle of a second-factor step, or None (none, expired, disabled)."""
    from servicekonto.db import db

    state = _pending_state()
    if state is None:
        return None
    user = db.session.get(User, int(state["user_id"]))
    if user is None or user.is_disabled:
        session.pop(PENDING_KEY, None)
        return None
    return user


def pending_next() -> str | None:
    state = _pending_state()
    return state.get("next") if state else None


def is_step_up() -> bool:
    state = _pending_state()
    return bool(state and state.get("step_up"))


def cancel() -> None:
    session.pop(PENDING_KEY, None)


def finish(user: User, *, method: str, amr: str) -> str:
    """The second factor was verified by ``method``: complete the login or step-up.

    A login is established at LoA substantial with amr ``["pwd", amr]`` (new session id). A
    step-up keeps the login (its ``sid``: portals know it for back-channel logout) but rotates
    the session id, raises ``acr``, extends ``amr`` and sets ``auth_time`` to now: the
    substantial authentication happened now, and the session's absolute limit (2 h) counts
    from here too (the rotated session record starts now). Audited; the caller commits.
    Returns the same-site URL to continue to.
    """
    from servicekonto.accounts.authentication import THROTTLE
    from servicekonto.db import db

    if method not in METHODS:
        raise ValueError(f"unknown second-factor method {method!r}")
    state = _pending_state() or {}
    session.pop(PENDING_KEY, None)
    next_url = state.get("next") or url_for("accounts.overview")
    auth = login_session.current_auth()
    step_up = bool(state.get("step_up")) and auth is not None and auth.user_id == user.id
    THROTTLE.clear_account(user.email)
    if step_up:
        state = login_session.step_up(LOA_SUBSTANTIAL, amr)
        record(db.session, AuditTag.ACCOUNT_STEP_UP, actor=f"citizen:{user.id}",
               subject_user_id=user.id,
               details={"method": method, "amr": list(state.amr), "acr": LOA_SUBSTANTIAL})
    else:
        login_session.establish(user, amr=("pwd", amr), acr=LOA_SUBSTANTIAL)
        record(db.session, AuditTag.ACCOUNT_LOGIN_SUCCESS, actor=f"citizen:{user.id}",
               subject_user_id=user.id,
               details={"amr": ["pwd", amr], "acr": LOA_SUBSTANTIAL, "method": method})
    return next_url


# -- attempts (throttled like password logins) ------------------------------------------------

def ensure_not_blocked(user: User, ip: str) -> None:
    """Raises ``authentication.LoginBlocked`` while the account (or IP) is locked: check this
    *before* verifying a code, so a locked account is no oracle for guesses."""
    from servicekonto.accounts.authentication import THROTTLE, LoginBlocked

    wait = THROTTLE.blocked_for(user.email, ip)
    if wait:
        raise LoginBlocked(wait)


def record_failure(db_session: Session, user: User, *, method: str, ip: str) -> None:
    """A wrong second factor: counts against the per-account login throttle, audited as a
    failed login (sign-in history). Raises ``authentication.LoginFailed`` (``newly_locked``:
    mail the owner after the commit; ``retry_after``: answer 429)."""
    from servicekonto.accounts.authentication import THROTTLE, LoginFailed

    locked_now, wait = THROTTLE.count_failure(user.email, ip)
    record(db_session, AuditTag.ACCOUNT_LOGIN_FAILURE, actor="anonymous",
           subject_user_id=user.id, details={"reason": "wrong_second_factor", "method": method})
    if locked_now:
        record(db_session, AuditTag.ACCOUNT_LOGIN_LOCKED, actor="system",
               subject_user_id=user.id, details={"known_account": True, "retry_after": wait})
    raise LoginFailed(user, locked_now, wait)


def session_proved_second_factor() -> bool:
    auth = login_session.current_auth()
    return auth is not None and rank(auth.acr) >= rank(LOA_SUBSTANTIAL)


def may_remove(db_session: Session, user: User) -> bool:
    """False when removing one more factor removes the last one and this session has not
    proved a second factor (acr below substantial)."""
    if total_enrolled(db_session, user.id) > 1:
        return True
    return session_proved_second_factor()


def notify_removed(user: User, kind_name: str) -> None:
    """Security mail after a factor was removed (after the commit; a failed mail is logged)."""
    found = kind(kind_name)
    label = str(found.label) if found else kind_name
    send_security_mail(user, "factor_removed", factor=label)


def send_security_mail(user: User, template: str, **context: Any) -> bool:
    from servicekonto import mail
    from servicekonto.settings import current_settings

    link = current_settings()["issuer"].rstrip("/") + SECURITY_PATH  # also from the CLI
    try:
        mail.send_template(user.email, template, user.locale, user=user, security_link=link,
                           **context)
    except mail.MailError:
        current_app.logger.warning("could not send the %s mail", template)
        return False
    return True
