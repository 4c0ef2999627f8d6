"""Password login with throttling of failed attempts, and re-checking the current password.

Throttling (``servicekonto.throttle``, memory or Redis): only *failed* attempts count.

* per account: ``login_account_failures`` per ``login_account_window_minutes``, keyed by the
  SHA-256 of the normalised e-mail address, so unknown addresses are throttled exactly like
  known ones (no enumeration through the lockout);
* per IP: ``login_ip_failures`` per ``login_ip_window_minutes`` (generous: shared addresses).

A blocked account or IP is refused before the password is even checked. The failure that fills
the account's window *locks* it: ``LoginFailed.newly_locked`` tells the caller to notify the
owner (once) after the commit. A successful login clears the account's counter.

A citizen with a second factor (``servicekonto.mfa``) is not logged in by the password: the
result says ``second_factor=True`` and the counter is *not* cleared until the second factor is
verified too, otherwise knowing the password would reset the count of guessed codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from servicekonto import prepared
from servicekonto.accounts import passwords
from servicekonto.accounts.emails import InvalidEmail, lookup_form
from servicekonto.accounts.models import User
from servicekonto.accounts.services import AccountError, find_by_email
from servicekonto.audit import AuditTag, record
from servicekonto.audit.service import entry, insert_now
from servicekonto.throttle import FailedLoginThrottle

#: Counters "login-account" / "login-ip" (the names the throttle used from the start).
THROTTLE = FailedLoginThrottle("login")


class LoginBlocked(AccountError):
    """Too many failed attempts for this account or IP; try again after ``retry_after`` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed attempts")
        self.retry_after = retry_after


class LoginFailed(AccountError):
    """Wrong e-mail or password (or a disabled account: indistinguishable on purpose).

    ``user`` is the account the address belongs to (None if unknown), ``newly_locked`` is True
    for the one failure that locked the account, ``retry_after`` is set when this failure made
    further attempts wait.
    """

    def __init__(self, user: User | None = None, newly_locked: bool = False,
                 retry_after: int | None = None) -> None:
        super().__init__("wrong e-mail address or password")
        self.user = user
        self.newly_locked = newly_locked
        self.retry_after = retry_after


@dataclass(frozen=True)
class PasswordLogin:
    """A correct password: ``second_factor`` says whether a second factor must follow.
    ``audit``: the success entry, NOT written yet: the caller writes it with what the login
    leads to (the new session: ``login_session.establish(..., audit=)``; or the session's
    transaction before the second factor step)."""

    user: User
    second_factor: bool
    audit: tuple[dict[str, Any], ...]


def _password_ok(user: User | None, password: str) -> bool:
    if user is None:
        passwords.burn_verify_time(password)
        return False
    ok = passwords.verify_password(user.password_hash, password)
    return ok and not user.is_disabled


_ACCOUNT_AND_FACTORS: dict[tuple[str, ...], Any] = {}
_USER_COLUMNS = tuple(c.key for c in User.__table__.c)


def _account_statement() -> Any:  # noqa: ANN401 - a Core select, or None
    """The account's columns and, in the same query, how many second factors it has; None
    when a factor kind cannot say so in SQL (the caller counts after the hash then). Built
    once per set of factor kinds."""
    from servicekonto.mfa import factors

    names = tuple(k.name for k in factors.kinds())
    if names not in _ACCOUNT_AND_FACTORS:
        total = factors.enrolled_total(User.id)
        _ACCOUNT_AND_FACTORS[names] = None if total is None else (
            select(*User.__table__.c, total.label("factor_count"))
            .where(User.email == bindparam("email")))
    return _ACCOUNT_AND_FACTORS[names]


def _detached_user(row: Any) -> User:  # noqa: ANN401 - a Core row
    """A ``User`` from a Core row without the ORM's loading machinery: detached with its
    identity (every column loaded; touching a relationship raises instead of loading)."""
    from sqlalchemy.orm import make_transient_to_detached

    user = User(**{key: getattr(row, key) for key in _USER_COLUMNS})
    make_transient_to_detached(user)
    return user


def _find_user(session: Session, normalised: str | None) -> tuple[User | None, int | None]:
    """The account and its number of second factors (None: count it after the hash), read so
    that the hash that follows holds no pooled connection.

    The Argon2id verify takes tens of milliseconds and may first wait for the core's slot
    (``passwords._SLOTS``). In a fresh unit of work the account is one autocommit statement on
    ``db.reader`` (no BEGIN, no ORM loading; the connection goes back to the pool at once), and
    the user a detached ``User``; the writes after the hash begin their own transaction. When a
    transaction is already open (a signed-in citizen re-authenticating: Flask-Login loaded the
    user) or changes are pending, the read joins it as an ORM query: nothing of the caller's
    is ever committed here.
    """
    from servicekonto.db import get_db

    if normalised is None:
        return None, None
    statement = _account_statement()
    if session.in_transaction() or session.new or session.dirty or session.deleted:
        if statement is None:
            return find_by_email(session, normalised, normalised=True), None
        row = session.execute(select(User, statement.selected_columns.factor_count)
                              .where(User.email == normalised)).first()
        return (None, None) if row is None else (row[0], int(row[1] or 0))
    if statement is None:
        with get_db().reader.connect() as conn:
            found = conn.execute(select(*User.__table__.c)
                                 .where(User.email == normalised)).first()
        return (None if found is None else _detached_user(found)), None
    with get_db().reader.connect() as conn:
        row = prepared.fetch_first(conn, statement, {"email": normalised})
    return (None, None) if row is None else (_detached_user(row), int(row.factor_count or 0))


def authenticate(session: Session, email: str, password: str, *, ip: str) -> PasswordLogin:
    """Check e-mail and password. Raises LoginBlocked or LoginFailed (after auditing)."""
    from servicekonto.mfa import factors

    try:
        normalised: str | None = lookup_form(email)
    except InvalidEmail:
        normalised = None
    key = THROTTLE.key_of(normalised or THROTTLE.normalised(email))
    wait = THROTTLE.blocked_for(email, ip, key=key)
    if wait:
        raise LoginBlocked(wait)
    user, enrolled = _find_user(session, normalised)
    if not _password_ok(user, password):
        locked_now, wait = THROTTLE.count_failure(email, ip, key=key)
        subject = user.id if user is not None else None
        reason = ("unknown_account" if user is None else
                  "disabled" if user.is_disabled else "wrong_password")
        record(session, AuditTag.ACCOUNT_LOGIN_FAILURE, actor="anonymous",
               subject_user_id=subject, details={"reason": reason})
        if locked_now:
            record(session, AuditTag.ACCOUNT_LOGIN_LOCKED, actor="system",
                   subject_user_id=subject,
                   details={"known_account": user is not None, "retry_after": wait})
        raise LoginFailed(user, locked_now, wait)

    assert user is not None
    # A rehash (older parameters) is computed before the transaction below begins, for the
    # same reason as _find_user: no connection held while hashing.
    rehashed = (passwords.hash_password(password)
                if passwords.needs_rehash(user.password_hash) else None)
    if enrolled is None:
        enrolled = factors.total_enrolled(session, user.id)
    second_factor = enrolled > 0
    if rehashed is not None:  # the new hash and its entry in the caller's transaction
        # A Core UPDATE: the user may be detached (``_find_user``).
        session.execute(update(User).where(User.id == user.id)
                        .values(password_hash=rehashed)
                        .execution_options(synchronize_session=False))
        set_committed_value(user, "password_hash", rehashed)
        insert_now(session, entry(AuditTag.ACCOUNT_PASSWORD_REHASHED,
                                  actor=f"citizen:{user.id}", subject_user_id=user.id))
    if second_factor:
        success = entry(AuditTag.ACCOUNT_LOGIN_PASSWORD_VERIFIED, actor=f"citizen:{user.id}",
                        subject_user_id=user.id, details={"amr": ["pwd"]})
    else:
        THROTTLE.clear_account(email, key=key)
        success = entry(AuditTag.ACCOUNT_LOGIN_SUCCESS, actor=f"citizen:{user.id}",
                        subject_user_id=user.id, details={"amr": ["pwd"]})
    return PasswordLogin(user, second_factor, (success,))


def check_current_password(session: Session, user: User, password: str, *, ip: str) -> bool:
    """Re-check a logged-in citizen's password (changing password or e-mail).

    Wrong answers count against the same per-account limit as failed logins, so a hijacked
    session cannot be used to guess the password. Raises LoginBlocked when locked.
    """
    wait = THROTTLE.blocked_for(user.email, ip)
    if wait:
        raise LoginBlocked(wait)
    if passwords.verify_password(user.password_hash, password):
        return True
    locked_now, wait = THROTTLE.count_failure(user.email, ip)
    record(session, AuditTag.ACCOUNT_LOGIN_FAILURE, actor=f"citizen:{user.id}",
           subject_user_id=user.id, details={"reason": "wrong_current_password"})
    if locked_now:
        record(session, AuditTag.ACCOUNT_LOGIN_LOCKED, actor="system", subject_user_id=user.id,
               details={"known_account": True, "retry_after": wait})
        raise LoginFailed(user, True, wait)
    return False
