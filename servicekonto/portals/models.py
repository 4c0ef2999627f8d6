"""Organisations, their operator accounts, initial access tokens and data-access requests.

Operators are not citizens: their own table, the same login machinery (Argon2id, throttling,
server-side sessions), and a second factor (TOTP) always required. An administrator is an
operator with ``role = "admin"`` (the Servicekonto's own IT service provider).
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicekonto.db import Base, utcnow


class Organisation(Base):
    """A body that operates portals, e.g. "Stadt Musterstadt"."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    operators: Mapped[list[Operator]] = relationship(back_populates="organisation")


class OperatorRole(enum.StrEnum):
    OPERATOR = "operator"
    ADMIN = "admin"


class Operator(Base):
    """A person who manages portals of an organisation (or, as admin, the whole service).

    ``totp_secret_encrypted``: AES-GCM with the configured key-encryption key; ``totp_last_step``
    refuses the replay of a code already used.
    """

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=OperatorRole.OPERATOR)
    totp_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    totp_confirmed_at: Mapped[dt.datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[dt.datetime | None]

    organisation: Mapped[Organisation | None] = relationship(back_populates="operators")

    @property
    def is_admin(self) -> bool:
        return self.role == OperatorRole.ADMIN


class InitialAccessToken(Base):
    """Bearer token for RFC 7591 registration, issued by an administrator; stored hashed.

    ``scope``: what clients registered with it may ask for. ``pre_approved``: its clients are
    active at once. ``uses_left`` None = unlimited until ``expires_at`` (None = no expiry).
    """

    __tablename__ = "initial_access_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text, default="openid")
    pre_approved: Mapped[bool] = mapped_column(Boolean, default=False)
    uses_left: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120))
    revoked_at: Mapped[dt.datetime | None]

    organisation: Mapped[Organisation] = relationship()


class RequestStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class DataAccessRequest(Base):
    """An operator asks that a portal may receive one claim: purpose and legal basis.

    Four eyes: ``decided_by`` must differ from ``requested_by``. An approved claim is what the
    portal's ``allowed_claims`` contain; the rows are the record of processing.
    """

    __tablename__ = "data_access_requests"
    __table_args__ = (Index("ix_data_access_requests_client", "client_pk", "claim"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("oidc_clients.id", ondelete="CASCADE"))
    claim: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.PENDING)
    requested_by: Mapped[int | None] = mapped_column(
        ForeignKey("operators.id", ondelete="SET NULL"))
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[int | None] = mapped_column(
        ForeignKey("operators.id", ondelete="SET NULL"))
    decided_at: Mapped[dt.datetime | None]
    decision_note: Mapped[str | None] = mapped_column(Text)
