"""Registration and e-mail verification.

A registration with an address that already has an account gets the same answer as a new one
("check your mail"); the owner gets a mail saying someone tried to register with it. So the
form never tells whether an address is registered.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from servicekonto.accounts import email_links, passwords
from servicekonto.accounts.emails import normalize_email
from servicekonto.accounts.models import EmailTokenPurpose, User
from servicekonto.accounts.services import create_user
from servicekonto.audit import AuditTag, record
from servicekonto.db import utcnow
from servicekonto.settings import current_settings


@dataclass
class Registration:
    """What happened: a new account (with its verification token) or a duplicate attempt."""

    user: User
    duplicate: bool
    token: str | None = None


def verification_lifetime() -> dt.timedelta:
    return dt.timedelta(hours=current_settings()["verification_link_hours"])


def register(session: Session, *, email: str, password: str, given_name: str,
             family_name: str, locale: str) -> Registration:
    """Create an unverified account and a verification token, or record a duplicate attempt.

    The password must have passed ``password_problems`` already (the form checks it, for new
    and taken addresses alike). Raises InvalidEmail for a malformed address.
    """
    email = normalize_email(email)
    existing = session.scalar(select(User).where(User.email == email))
    if existing is not None:
        passwords.burn_verify_time(password)  # about the time hashing a new password takes
        record(session, AuditTag.ACCOUNT_REGISTRATION_DUPLICATE, actor="anonymous",
               subject_user_id=existing.id)
        return Registration(existing, duplicate=True)
    user = create_user(session, email=email, password=password, given_name=given_name,
                       family_name=family_name, locale=locale,
                       tag=AuditTag.ACCOUNT_REGISTRATION_CREATED)
    token = email_links.issue(session, user, EmailTokenPurpose.VERIFY_EMAIL, user.email,
                              verification_lifetime())
    return Registration(user, duplicate=False, token=token)


def new_verification_token(session: Session, user: User) -> str:
    """A fresh verification link for ``user``'s current address (resend)."""
    token = email_links.issue(session, user, EmailTokenPurpose.VERIFY_EMAIL, user.email,
                              verification_lifetime())
    record(session, AuditTag.ACCOUNT_VERIFICATION_RESENT, actor=f"citizen:{user.id}",
           subject_user_id=user.id)
    return token


def verify_email(session: Session, token: str) -> User:
    """Mark the address of the link verified. Raises a LinkError subclass."""
    row = email_links.resolve(session, token, EmailTokenPurpose.VERIFY_EMAIL)
    user = row.user
    if row.email != user.email:  # the address changed since the link was sent
        raise email_links.LinkInvalid("the link belongs to a previous address")
    email_links.consume(session, row)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    record(session, AuditTag.ACCOUNT_EMAIL_VERIFIED, actor=f"citizen:{user.id}",
           subject_user_id=user.id, details={"purpose": "registration"})
    return user
