"""What a view does with a throttled attempt: the 429 answer, the lock notice, re-authentication.

Password logins, second factors (TOTP, recovery codes, passkeys) and the console's password
re-checks share one per-account throttle (``authentication.THROTTLE``); this module gives all of
them the same answers, so a lockout looks and behaves the same wherever it happens.

Example (a view checking a code)::

    try:
        factors.record_failure(db.session, user, method="totp", ip=client_ip())
    except authentication.LoginFailed as exc:
        handle_failure(exc)      # commits the audit events, mails a new lock, maybe raises 429
"""

from __future__ import annotations

import logging

from flask import request, url_for
from flask_babel import ngettext

from servicekonto import mail
from servicekonto.accounts import authentication
from servicekonto.accounts.models import User
from servicekonto.db import db
from servicekonto.errors import TooManyAttempts
from servicekonto.settings import current_settings

log = logging.getLogger(__name__)


def client_ip() -> str:
    return request.remote_addr or "unknown"


def too_many(retry_after: int) -> TooManyAttempts:
    """The 429 answer, saying how long to wait (the same for every address: no enumeration)."""
    minutes = max(1, -(-int(retry_after) // 60))
    return TooManyAttempts(retry_after, ngettext(
        "Too many attempts. For your protection, please try again in %(num)d minute.",
        "Too many attempts. For your protection, please try again in %(num)d minutes.",
        minutes))


def send_lock_notice(user: User | None) -> None:
    """Tell the owner that their account was locked (once per lock, after the commit)."""
    if user is None:
        return
    settings = current_settings()
    try:
        mail.send_template(user.email, "login_locked", user.locale, user=user,
                           minutes=settings["login_account_window_minutes"],
                           reset_link=settings["issuer"] + url_for("accounts.forgot_password"))
    except mail.MailError:
        log.warning("could not send the login_locked mail")


def handle_failure(exc: authentication.LoginFailed) -> None:
    """After a failed attempt: keep its audit events, mail a new lock, and answer 429 when
    further attempts must wait. Returns normally when the caller may show the form again."""
    db.session.commit()
    if exc.newly_locked:
        send_lock_notice(exc.user)
    if exc.retry_after:
        raise too_many(exc.retry_after) from None


def confirm_password(user: User, password: str) -> bool:
    """Re-authentication of a signed-in citizen (destructive actions, new factors, changes):
    throttled and audited like logins; a lock ends in 429."""
    try:
        ok = authentication.check_current_password(db.session, user, password, ip=client_ip())
    except authentication.LoginBlocked as exc:
        raise too_many(exc.retry_after) from None
    except authentication.LoginFailed as exc:
        handle_failure(exc)
        raise too_many(60) from None
    if not ok:
        db.session.commit()  # keep the failure's audit event
    return ok
