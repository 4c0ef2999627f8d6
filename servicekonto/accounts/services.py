"""Account rules: creating, disabling and looking up citizens.

Services take the SQLAlchemy session explicitly, add their audit events to it and leave the
commit to the caller (view or CLI), so a change and its audit entry commit together.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from servicekonto.accounts.emails import normalize_email
from servicekonto.accounts.models import User
from servicekonto.accounts.passwords import hash_password, password_problems
from servicekonto.audit import AuditTag, record
from servicekonto.db import utcnow


class AccountError(Exception):
    """A rule was broken; ``str()`` is a message fit for the citizen or the operator."""


class EmailAlreadyRegistered(AccountError):
    pass


class PasswordRejected(AccountError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems))
        self.problems = problems


class UserNotFound(AccountError):
    pass


#: Built once (not per login): the statement and its cache key.
_BY_EMAIL = select(User).where(User.email == bindparam("email"))


def find_by_email(session: Session, email: str, *, normalised: bool = False) -> User | None:
    """The account of ``email`` (``normalised=True``: already through ``normalize_email``)."""
    return session.scalar(_BY_EMAIL, {"email": email if normalised else normalize_email(email)})


def create_user(session: Session, *, email: str, password: str, given_name: str,
                family_name: str, verified: bool = False, actor: str = "anonymous",
                locale: str = "de", tag: AuditTag = AuditTag.ACCOUNT_USER_CREATED) -> User:
    """Create a citizen (password checked against the policy) and audit it."""
    email = normalize_email(email)
    problems = password_problems(password, email=email, names=(given_name, family_name))
    if problems:
        raise PasswordRejected(problems)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise EmailAlreadyRegistered(f"an account with this e-mail address exists: {email}")
    user = User(email=email, password_hash=hash_password(password), given_name=given_name.strip(),
                family_name=family_name.strip(), locale=locale,
                email_verified_at=utcnow() if verified else None)
    session.add(user)
    session.flush()
    record(session, tag, actor=actor, subject_user_id=user.id,
           details={"verified": verified})
    return user


def set_disabled(session: Session, user: User, disabled: bool, *, actor: str) -> None:
    """Disable (or re-enable) an account; the caller ends its sessions after commit."""
    if disabled == user.is_disabled:
        return
    user.disabled_at = utcnow() if disabled else None
    record(session, AuditTag.ACCOUNT_USER_DISABLED if disabled else AuditTag.ACCOUNT_USER_ENABLED,
           actor=actor, subject_user_id=user.id)
