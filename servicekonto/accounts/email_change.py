"""Changing the e-mail address: a link to the new address, a notice to the old one.

The request never reveals whether the new address already has an account: if it does, the new
address gets a notice instead of a link and the citizen sees the same page. When a link is
applied, the address is checked again (it may have been registered meanwhile) and the change
is refused with a clear error.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from servicekonto.accounts import email_links
from servicekonto.accounts.emails import normalize_email
from servicekonto.accounts.models import EmailToken, EmailTokenPurpose, User
from servicekonto.accounts.services import AccountError
from servicekonto.audit import AuditTag, record
from servicekonto.db import utcnow
from servicekonto.settings import current_settings


class SameAddress(AccountError):
    pass


class AddressTaken(AccountError):
    pass


@dataclass
class ChangeRequest:
    old_email: str
    new_email: str
    token: str | None  # None: the new address belongs to another account (send a notice)


def change_lifetime() -> dt.timedelta:
    return dt.timedelta(hours=current_settings()["email_change_link_hours"])


def _taken(session: Session, email: str, user: User) -> bool:
    other = session.scalar(select(User.id).where(User.email == email, User.id != user.id))
    return other is not None


def request_change(session: Session, user: User, new_email: str) -> ChangeRequest:
    """Issue a change token for ``new_email`` (current password checked by the caller)."""
    new_email = normalize_email(new_email)
    if new_email == user.email:
        raise SameAddress("this is already the account's address")
    taken = _taken(session, new_email, user)
    token = None if taken else email_links.issue(
        session, user, EmailTokenPurpose.CHANGE_EMAIL, new_email, change_lifetime())
    record(session, AuditTag.ACCOUNT_EMAIL_CHANGE_REQUESTED, actor=f"citizen:{user.id}",
           subject_user_id=user.id, details={"address_taken": taken})
    return ChangeRequest(user.email, new_email, token)


def check_change_link(session: Session, token: str) -> EmailToken:
    """The change token behind a link, without using it up. Raises a LinkError subclass."""
    row = email_links.resolve(session, token, EmailTokenPurpose.CHANGE_EMAIL)
    if row.user.is_disabled:
        raise email_links.LinkInvalid("account disabled")
    return row


def apply_change(session: Session, token: str) -> tuple[User, str]:
    """Switch the account to the link's address; return (user, old address).

    Raises AddressTaken when the address got an account meanwhile, or a LinkError subclass.
    """
    row = check_change_link(session, token)
    user = row.user
    if _taken(session, row.email, user):
        raise AddressTaken("the new address belongs to another account now")
    email_links.consume(session, row)
    old = user.email
    user.email = row.email
    user.email_verified_at = utcnow()
    record(session, AuditTag.ACCOUNT_EMAIL_CHANGED, actor=f"citizen:{user.id}",
           subject_user_id=user.id)
    return user, old
