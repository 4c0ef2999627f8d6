"""Citizen second factors: one authenticator app (TOTP) per citizen, and recovery codes.

``totp_secret_encrypted`` is AES-GCM under the key-encryption key (owner ``citizen-totp:<user
id>``, see ``servicekonto.mfa.stored``); ``totp_last_step`` refuses a replayed code. The factor
counts only once ``confirmed_at`` is set (the citizen entered a code from the app).

Recovery codes: 80 random bits each, stored as SHA-256 only. A slow hash (Argon2) protects
*guessable* secrets; a code with 80 bits of entropy cannot be found from its SHA-256 by trying,
and checking ten Argon2 hashes per attempt would only slow every sign-in.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from servicekonto.db import Base, utcnow


class TotpFactor(Base):
    __tablename__ = "citizen_totp_factors"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         unique=True)
    totp_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]


class RecoveryCode(Base):
    __tablename__ = "citizen_recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    used_at: Mapped[dt.datetime | None]
