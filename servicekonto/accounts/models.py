"""Citizen accounts and the single-use e-mail tokens that verify, reset and change them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicekonto.db import Base, utcnow


class User(Base):
    """A citizen. ``email`` is stored normalised (see accounts.emails.normalize_email)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    email_verified_at: Mapped[dt.datetime | None]
    password_hash: Mapped[str] = mapped_column(String(255))
    password_changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    birthdate: Mapped[dt.date | None] = mapped_column(Date)
    phone_number: Mapped[str | None] = mapped_column(String(40))
    street_address: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    locality: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(2))
    locale: Mapped[str] = mapped_column(String(8), default="de")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    disabled_at: Mapped[dt.datetime | None]

    email_tokens: Mapped[list[EmailToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def is_disabled(self) -> bool:
        return self.disabled_at is not None

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    # Flask-Login's user protocol (what UserMixin would add, without its __eq__).
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return not self.is_disabled

    def get_id(self) -> str:
        return str(self.id)

    def __repr__(self) -> str:  # no personal data in reprs that end up in logs
        return f"<User {self.id}>"


class CitizenRow:
    """A citizen's columns in a plain Core row, read like a ``User``: the protocol hot paths
    (userinfo, the token grants) release claims from it without building an ORM entity.
    ``prefix``: the label prefix of the citizen's columns when the row also holds another
    table's columns of the same names (``select(..., *citizen_columns("citizen_"))``)."""

    __slots__ = ("_row", "_prefix")

    def __init__(self, row: Any, prefix: str = "") -> None:  # noqa: ANN401 - a Core row
        self._row = row
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401
        return getattr(self._row, self._prefix + name)

    is_verified = User.is_verified
    is_disabled = User.is_disabled
    full_name = User.full_name


def citizen_columns(prefix: str = "") -> list[Any]:
    """The ``users`` columns for a ``CitizenRow``, labelled with ``prefix``."""
    return [c.label(prefix + c.key) if prefix else c for c in User.__table__.c]


class EmailTokenPurpose(enum.StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"
    CHANGE_EMAIL = "change_email"


class EmailToken(Base):
    """A link sent by e-mail: signed and timed in the URL, single-use through this row.

    Only a SHA-256 of the random nonce is stored; ``email`` is the address the link was sent to
    (for an e-mail change: the new address).
    """

    __tablename__ = "email_tokens"
    __table_args__ = (Index("ix_email_tokens_user_purpose", "user_id", "purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    nonce_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship(back_populates="email_tokens")
