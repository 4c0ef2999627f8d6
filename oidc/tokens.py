"""Token helpers: random values, their SHA-256, issuing, lookup and revocation.

Codes, access tokens and refresh tokens are random (256 bits) and stored only as SHA-256 hex;
a lookup is one indexed query on the hash. Used by the grants, userinfo, and the session/logout
engineer's revocation, introspection and logout code.

Example::

    value, digest = new_secret()
    token = session.scalar(select(Token).where(Token.access_token_hash == hash_token(value)))
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from oidc.models import Client, Token
from servicekonto.db import utcnow


def hash_token(value: str) -> str:
    """SHA-256 hex of a code or token value (what the database stores)."""
    return hashlib.sha256(value.encode()).hexdigest()


def new_secret() -> tuple[str, str]:
    """A fresh random value (43 characters, 256 bits) and its hash."""
    value = secrets.token_urlsafe(32)
    return value, hash_token(value)


def revoke_family(session: Session, family_id: str) -> int:
    """Revoke every token of a refresh family (one UPDATE); returns how many rows changed."""
    result = session.execute(
        update(Token).where(Token.family_id == family_id, Token.revoked_at.is_(None))
        .values(revoked_at=utcnow()).execution_options(synchronize_session=False))
    return result.rowcount or 0


def revoke_for_code(session: Session, code_id: int) -> int:
    """Revoke every token issued from an authorization code, and their refresh families."""
    now = utcnow()
    families = session.scalars(
        select(Token.family_id).where(Token.authorization_code_id == code_id)).all()
    if not families:
        return 0
    result = session.execute(
        update(Token).where(or_(Token.authorization_code_id == code_id,
                                Token.family_id.in_(set(families))),
                            Token.revoked_at.is_(None))
        .values(revoked_at=now).execution_options(synchronize_session=False))
    return result.rowcount or 0


def issue(session: Session, *, client: Client, user_id: int | None, scope: str,
          grant_type: str, with_refresh: bool, settings: dict[str, Any],
          claims_request: dict[str, Any] | None = None, family_id: str | None = None,
          authorization_code_id: int | None = None, sid: str | None = None,
          auth_time: int | None = None, acr: str | None = None,
          amr: list[str] | None = None,
          refresh_expires_at: dt.datetime | None = None) -> tuple[Token, str, str | None]:
    """Insert a Token row; return its values with the plain access and refresh token values.

    A rotated refresh token keeps its family's original expiry (``refresh_expires_at``), so
    rotation never extends an offline grant beyond ``refresh_token_lifetime_days``.
    """
    values, access, refresh = new_token(
        client=client, user_id=user_id, scope=scope, grant_type=grant_type,
        with_refresh=with_refresh, settings=settings, claims_request=claims_request,
        family_id=family_id, authorization_code_id=authorization_code_id, sid=sid,
        auth_time=auth_time, acr=acr, amr=amr, refresh_expires_at=refresh_expires_at)
    # A Core INSERT at once instead of session.add(): no ORM object, no unit-of-work flush on
    # the token endpoint's hot path. The returned row is a plain read-only view of the values
    # (no id: nothing reads a token's id in the request that issued it).
    session.execute(INSERT, values)
    return SimpleNamespace(**values), access, refresh  # type: ignore[return-value]


def new_token(*, client: Client, user_id: int | None, scope: str, grant_type: str,
              with_refresh: bool, settings: dict[str, Any],
              claims_request: dict[str, Any] | None = None, family_id: str | None = None,
              authorization_code_id: int | None = None, sid: str | None = None,
              auth_time: int | None = None, acr: str | None = None,
              amr: list[str] | None = None, refresh_expires_at: dt.datetime | None = None,
              ) -> tuple[dict[str, Any], str, str | None]:
    """A new token's column values (not written yet) with its plain access and refresh values."""
    now = utcnow()
    access, access_hash = new_secret()
    refresh, refresh_hash = new_secret() if with_refresh else (None, None)
    values: dict[str, Any] = dict(
        client_pk=client.id, user_id=user_id, access_token_hash=access_hash,
        refresh_token_hash=refresh_hash, token_type="Bearer", scope=scope,  # noqa: S106
        claims_request=claims_request, family_id=family_id or secrets.token_hex(16),
        authorization_code_id=authorization_code_id, grant_type=grant_type, sid=sid,
        auth_time=auth_time, acr=acr, amr=amr, issued_at=now,
        access_expires_at=now + dt.timedelta(seconds=settings["access_token_lifetime_seconds"]),
        refresh_expires_at=(refresh_expires_at or now + dt.timedelta(
            days=settings["refresh_token_lifetime_days"])) if with_refresh else None,
        rotated_at=None, revoked_at=None,
    )
    return values, access, refresh


INSERT = insert(Token.__table__)
#: PostgreSQL: the token INSERT as a data-modifying CTE (bind parameters named like the
#: columns, as ``new_token`` returns them), for ``audit.service.insert_from``.
INSERT_CTE = (insert(Token.__table__)
              .values({c.name: bindparam(c.name) for c in Token.__table__.c if c.name != "id"})
              .returning(Token.__table__.c.id).cte("issued"))


def insert_from_cte(source: Any) -> Any:
    """PostgreSQL: ``INSERT INTO oidc_tokens (...) SELECT :token_<column>, ... FROM source
    RETURNING id`` as the data-modifying CTE ``issued``: one new token per row ``source``
    returns, none when it returns none. For chaining a token on a conditional UPDATE (code
    redemption, refresh rotation) in one statement; feed it to
    ``audit.service.insert_many_from`` and pass the values through ``chained_params``.

    The parameters are prefixed: a parameter named like a column of the UPDATE's table would
    make SQLAlchemy add it to that UPDATE's SET clause."""
    table = Token.__table__
    columns = [c for c in table.c if c.name != "id"]
    values = select(*[bindparam(f"token_{c.name}", type_=c.type)
                      for c in columns]).select_from(source)
    return (insert(table).from_select([c.name for c in columns], values)
            .returning(table.c.id).cte("issued"))


def chained_params(values: dict[str, Any]) -> dict[str, Any]:
    """``new_token``'s values as the parameters of ``insert_from_cte``."""
    return {f"token_{name}": value for name, value in values.items()}


def is_access_active(token: Token | None, now: dt.datetime | None = None) -> bool:
    now = now or utcnow()
    return (token is not None and token.revoked_at is None
            and token.access_expires_at > now)
