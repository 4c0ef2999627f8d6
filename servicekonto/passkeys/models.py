"""A citizen's passkeys (WebAuthn credentials), used as a second factor."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from servicekonto.db import Base, utcnow

#: The citizen-chosen name of a passkey ("Laptop", "Security key at work").
NAME_MAX = 60


class Passkey(Base):
    """One registered credential. ``credential_id`` is the base64url of the raw id (unique over
    every account: an authenticator's credential belongs to exactly one account here); the public
    key is the COSE key as the authenticator sent it. ``sign_count`` is the last counter seen
    (0 for authenticators that do not count). The row goes with the account (ON DELETE
    CASCADE)."""

    __tablename__ = "passkeys"
    __table_args__ = (Index("ix_passkeys_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    aaguid: Mapped[str | None] = mapped_column(String(36))
    backed_up: Mapped[bool] = mapped_column(default=False)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]

    def __repr__(self) -> str:
        return f"<Passkey {self.id} of user {self.user_id}>"
