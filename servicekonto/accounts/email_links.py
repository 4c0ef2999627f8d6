"""Signed, expiring, single-use links sent by e-mail (verification, reset, e-mail change).

The URL carries ``URLSafeTimedSerializer(secret_key, salt=purpose).dumps(nonce)``: the
signature proves we issued it (a forged or truncated link fails before the database is asked),
the salt binds it to one purpose. The nonce is random; only its SHA-256 is stored in
``EmailToken`` together with ``expires_at`` and ``used_at``, so a database dump yields no usable
links and every link works exactly once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from servicekonto.accounts.models import EmailToken, EmailTokenPurpose, User
from servicekonto.accounts.services import AccountError
from servicekonto.db import utcnow

#: Longest token we even try to decode (a real one is about 100 characters).
MAX_TOKEN_LENGTH = 512


class LinkError(AccountError):
    """The link cannot be used; the subclass says why."""


class LinkInvalid(LinkError):
    """Forged, mistyped, truncated or for another purpose."""


class LinkExpired(LinkError):
    pass


class LinkUsed(LinkError):
    pass


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=purpose)


def _hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def issue(session: Session, user: User, purpose: EmailTokenPurpose, email: str,
          lifetime: dt.timedelta) -> str:
    """Store a new single-use token for ``user`` and return the string for the URL."""
    nonce = secrets.token_urlsafe(32)
    session.add(EmailToken(user_id=user.id, purpose=str(purpose), nonce_hash=_hash(nonce),
                           email=email, expires_at=utcnow() + lifetime))
    session.flush()
    return _serializer(str(purpose)).dumps(nonce)


def resolve(session: Session, token: str, purpose: EmailTokenPurpose) -> EmailToken:
    """The stored token behind ``token``; raises LinkInvalid, LinkUsed or LinkExpired."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise LinkInvalid("invalid link")
    try:
        nonce = _serializer(str(purpose)).loads(token)
    except BadSignature:
        raise LinkInvalid("invalid link") from None
    if not isinstance(nonce, str):
        raise LinkInvalid("invalid link")
    row = session.scalar(select(EmailToken).where(EmailToken.nonce_hash == _hash(nonce),
                                                  EmailToken.purpose == str(purpose)))
    if row is None:
        raise LinkInvalid("invalid link")
    if row.used_at is not None:
        raise LinkUsed("link already used")
    if row.expires_at <= utcnow():
        raise LinkExpired("link expired")
    return row


def consume(session: Session, row: EmailToken) -> None:
    """Mark ``row`` used, atomically: of two concurrent uses only one succeeds."""
    now = utcnow()
    result = session.execute(
        update(EmailToken)
        .where(EmailToken.id == row.id, EmailToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise LinkUsed("link already used")
    set_committed_value(row, "used_at", now)
