"""Password reset by e-mail and password change.

A reset request is answered identically whether or not the address has an account; only an
existing, enabled account gets a mail. Completing a reset sets the password, marks the address
verified (the link proved access to it) and - after the commit - the caller ends every session
of the account.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from servicekonto.accounts import email_links
from servicekonto.accounts.emails import InvalidEmail
from servicekonto.accounts.models import EmailToken, EmailTokenPurpose, User
from servicekonto.accounts.passwords import hash_password, password_problems
from servicekonto.accounts.services import PasswordRejected, find_by_email
from servicekonto.audit import AuditTag, record
from servicekonto.db import utcnow
from servicekonto.settings import current_settings


@dataclass
class ResetRequest:
    user: User
    token: str


def reset_lifetime() -> dt.timedelta:
    return dt.timedelta(minutes=current_settings()["reset_link_minutes"])


def request_reset(session: Session, email: str) -> ResetRequest | None:
    """Issue a reset token for an existing, enabled account; None otherwise (say nothing)."""
    try:
        user = find_by_email(session, email)
    except InvalidEmail:
        return None
    if user is None or user.is_disabled:
        return None
    token = email_links.issue(session, user, EmailTokenPurpose.RESET_PASSWORD, user.email,
                              reset_lifetime())
    record(session, AuditTag.ACCOUNT_PASSWORD_RESET_REQUESTED, actor="anonymous",
           subject_user_id=user.id)
    return ResetRequest(user, token)


def check_reset_link(session: Session, token: str) -> EmailToken:
    """The reset token behind a link, without using it up. Raises a LinkError subclass."""
    row = email_links.resolve(session, token, EmailTokenPurpose.RESET_PASSWORD)
    if row.user.is_disabled or row.email != row.user.email:
        raise email_links.LinkInvalid("account disabled or address changed")
    return row


def _set_password(user: User, new_password: str) -> None:
    problems = password_problems(new_password, email=user.email,
                                 names=(user.given_name, user.family_name))
    if problems:
        raise PasswordRejected(problems)
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()


def complete_reset(session: Session, token: str, new_password: str) -> User:
    """Set the new password and use up the link. The caller ends all sessions after commit."""
    row = check_reset_link(session, token)
    user = row.user
    _set_password(user, new_password)
    email_links.consume(session, row)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
        record(session, AuditTag.ACCOUNT_EMAIL_VERIFIED, actor=f"citizen:{user.id}",
               subject_user_id=user.id, details={"purpose": "password_reset"})
    record(session, AuditTag.ACCOUNT_PASSWORD_RESET_COMPLETED, actor=f"citizen:{user.id}",
           subject_user_id=user.id)
    return user


def change_password(session: Session, user: User, new_password: str) -> None:
    """Set a new password (the current one was checked by the caller) and audit it."""
    _set_password(user, new_password)
    record(session, AuditTag.ACCOUNT_PASSWORD_CHANGED, actor=f"citizen:{user.id}",
           subject_user_id=user.id)
