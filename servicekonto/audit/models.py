"""Audit log tables: append-only events and the head of their hash chain."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from servicekonto.db import Base, utcnow

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class AuditEvent(Base):
    """One thing that happened. Never updated, except once by the sealer (chain_seq, hash).

    ``id`` orders inserts (a database sequence, no lock). ``chain_seq`` and ``entry_hash`` are
    set by the sealer in a single-writer step: chain order is seal order, so a transaction that
    commits late is simply sealed in a later batch and never forks the chain.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_unsealed", "chain_seq", "id"),
        Index("ix_audit_events_subject", "subject_user_id", "occurred_at"),
        Index("ix_audit_events_client", "client_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    tag: Mapped[str] = mapped_column(String(80))
    actor: Mapped[str] = mapped_column(String(120))
    subject_user_id: Mapped[int | None] = mapped_column(BigInteger)
    client_id: Mapped[str | None] = mapped_column(String(120))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent_hash: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text, default="{}")
    chain_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    entry_hash: Mapped[str | None] = mapped_column(String(64))


class AuditChainHead(Base):
    """Exactly one row (id=1): the last sealed sequence number and hash; the sealer's lock."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[dt.datetime | None]
