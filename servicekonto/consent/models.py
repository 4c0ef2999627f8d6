"""Consent: one row per citizen and portal, with what was granted and what was refused."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from servicekonto.db import Base, utcnow


class Consent(Base):
    """Scopes and claims a citizen granted (or refused) a portal. Withdrawal deletes the grant
    lists (and the caller revokes the portal's tokens); the history lives in the audit log."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("user_id", "client_pk", name="uq_consents_user_client"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    client_pk: Mapped[int] = mapped_column(ForeignKey("oidc_clients.id", ondelete="CASCADE"))
    granted_scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    granted_claims: Mapped[list[str]] = mapped_column(JSON, default=list)
    refused_scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    refused_claims: Mapped[list[str]] = mapped_column(JSON, default=list)
    granted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
