"""Where server-side sessions live: the database (default) or Redis (when configured).

Both stores speak in ``SessionRecord``s and are safe to share between app instances.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Engine, bindparam, delete, select, update
from sqlalchemy.orm import Session

from servicekonto import prepared
from servicekonto.db import utcnow
from servicekonto.sessions.models import WebSession


@dataclass
class SessionRecord:
    key: str
    data: dict[str, Any]
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime
    idle_seconds: int
    user_id: int | None = field(default=None)

    def is_expired(self, now: dt.datetime) -> bool:
        return now >= self.expires_at or now >= self.last_seen_at + dt.timedelta(
            seconds=self.idle_seconds
        )

    def to_json(self) -> str:
        return json.dumps({
            "key": self.key, "data": self.data, "user_id": self.user_id,
            "created_at": self.created_at.isoformat(),
            "last_seen_at": self.last_seen_at.isoformat(),
            "expires_at": self.expires_at.isoformat(), "idle_seconds": self.idle_seconds,
        })

    @classmethod
    def from_json(cls, raw: str | bytes) -> SessionRecord:
        obj = json.loads(raw)
        return cls(
            key=obj["key"], data=obj["data"], user_id=obj["user_id"],
            created_at=dt.datetime.fromisoformat(obj["created_at"]),
            last_seen_at=dt.datetime.fromisoformat(obj["last_seen_at"]),
            expires_at=dt.datetime.fromisoformat(obj["expires_at"]),
            idle_seconds=obj["idle_seconds"],
        )


class SessionStore(Protocol):
    """Where sessions live. ``writes_audit``: ``save`` and ``replace`` take ``audit`` entries
    (from ``servicekonto.audit.service.entry``) and commit them atomically with the session's
    row (the login's success entry with its new session); stores without it never get any."""

    writes_audit: bool

    def load(self, key: str) -> SessionRecord | None: ...
    def save(self, record: SessionRecord) -> None: ...
    def touch(self, record: SessionRecord) -> None: ...
    def delete(self, key: str) -> None: ...
    def replace(self, old_key: str, record: SessionRecord) -> None: ...
    def list_for_user(self, user_id: int) -> list[SessionRecord]: ...
    def delete_for_user(self, user_id: int, keep: str | None = None) -> list[SessionRecord]: ...
    def purge_expired(self) -> int: ...


_LOAD = select(WebSession.__table__).where(WebSession.key == bindparam("key"))
_DELETE = delete(WebSession.__table__).where(WebSession.key == bindparam("key"))


_UPSERTS: dict[str, Any] = {}
_ONE_STATEMENT_WRITES: dict[tuple[bool, int], Any] = {}


def _upsert(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (key) DO UPDATE for PostgreSQL and SQLite, else None (merge)."""
    if dialect not in _UPSERTS:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        else:
            _UPSERTS[dialect] = None
            return None
        table = WebSession.__table__
        stmt = insert(table)
        _UPSERTS[dialect] = stmt.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={c.key: stmt.excluded[c.key] for c in table.columns if c.key != "key"})
    return _UPSERTS[dialect]


def _one_statement_write(replaces: bool, entries: int) -> Any:
    """PostgreSQL: a session write as ONE statement, run in autocommit: the upsert of the new
    row, with the DELETE of the row it replaces (``replaces``) and ``entries`` audit entries
    as data-modifying CTEs (PostgreSQL runs each to completion, referenced or not). One round
    trip and one atomic unit instead of BEGIN, DELETE, upsert, (INSERT,) COMMIT; built once
    per shape. Parameters: the row's columns, ``old_key``, ``audit<i>_<column>``."""
    shape = (replaces, entries)
    statement = _ONE_STATEMENT_WRITES.get(shape)
    if statement is None:
        from sqlalchemy.dialects.postgresql import insert

        from servicekonto.audit.service import insert_values

        table = WebSession.__table__
        upsert = insert(table).values({c.key: bindparam(c.key, type_=c.type)
                                       for c in table.columns})
        upsert = upsert.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={c.key: upsert.excluded[c.key] for c in table.columns if c.key != "key"})
        ctes = []
        if replaces:
            ctes.append(delete(table).where(table.c.key == bindparam("old_key"))
                        .cte("replaced_session"))
        if entries:
            ctes.append(insert_values(entries).cte("audit_entries"))
        statement = _ONE_STATEMENT_WRITES[shape] = upsert.add_cte(*ctes) if ctes else upsert
    return statement


class DatabaseSessionStore:
    """Sessions in the ``web_sessions`` table, each operation in its own short transaction
    (PostgreSQL: each write one autocommit statement)."""

    writes_audit = True

    def __init__(self, engine: Engine, reader: Engine | None = None) -> None:
        self.engine = engine
        # Reads are one SELECT: autocommit spares the BEGIN and ROLLBACK round trips that a
        # transaction costs on every request with a session cookie (docs/performance.md).
        # ``reader``: the app's autocommit engine (``Database.reader``), if it has one.
        self._reader = reader or engine.execution_options(isolation_level="AUTOCOMMIT")

    @staticmethod
    def _to_record(row: WebSession) -> SessionRecord:
        return SessionRecord(
            key=row.key, data=json.loads(row.data), user_id=row.user_id,
            created_at=row.created_at, last_seen_at=row.last_seen_at,
            expires_at=row.expires_at, idle_seconds=row.idle_seconds,
        )

    def load(self, key: str) -> SessionRecord | None:
        # A Core row, not an ORM entity: this runs on every request with a session cookie.
        with self._reader.connect() as conn:
            row = prepared.fetch_first(conn, _LOAD, {"key": key})
        return self._to_record(row) if row else None  # type: ignore[arg-type]

    def save(self, record: SessionRecord, audit: Sequence[dict[str, Any]] = ()) -> None:
        self._write(record, audit=audit)

    def replace(self, old_key: str, record: SessionRecord,
                audit: Sequence[dict[str, Any]] = ()) -> None:
        """Rotation (every login): the old row goes and the new one comes in one atomic unit,
        with the ``audit`` entries (the login's) if any."""
        self._write(record, old_key=old_key, audit=audit)

    def _write(self, record: SessionRecord, old_key: str | None = None,
               audit: Sequence[dict[str, Any]] = ()) -> None:
        from servicekonto.audit.service import audit_committed, entry_params, insert_values

        values = dict(key=record.key, user_id=record.user_id, data=json.dumps(record.data),
                      created_at=record.created_at, last_seen_at=record.last_seen_at,
                      expires_at=record.expires_at, idle_seconds=record.idle_seconds)
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            params = {**values, **entry_params(audit)}
            if old_key is not None:
                params["old_key"] = old_key
            with self._reader.connect() as conn:
                prepared.execute(conn, _one_statement_write(old_key is not None, len(audit)),
                                 params)
        elif (upsert := _upsert(dialect)) is not None:
            # One statement instead of merge()'s SELECT and INSERT/UPDATE (every login saves).
            with self.engine.begin() as conn:
                if old_key is not None:
                    conn.execute(_DELETE, {"key": old_key})
                conn.execute(upsert, values)
                if audit:
                    conn.execute(insert_values(len(audit)), entry_params(audit))
        else:
            with Session(self.engine) as session, session.begin():
                if old_key is not None:
                    session.execute(_DELETE, {"key": old_key})
                session.merge(WebSession(**values))
                if audit:
                    session.execute(insert_values(len(audit)), entry_params(audit))
        if audit:
            audit_committed(self.engine, [(e["tag"], e["details"]) for e in audit])

    def write_audit(self, audit: Sequence[dict[str, Any]]) -> None:
        """``audit`` entries on their own (one autocommit INSERT): for entries that were to
        commit with a session write that a store without ``writes_audit`` makes, or that did
        not happen."""
        from servicekonto.audit.service import insert_committed

        with self._reader.connect() as conn:
            insert_committed(conn, self.engine, *audit)

    def touch(self, record: SessionRecord) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(update(WebSession).where(WebSession.key == record.key)
                            .values(last_seen_at=record.last_seen_at))

    def delete(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(_DELETE, {"key": key})

    def list_for_user(self, user_id: int) -> list[SessionRecord]:
        now = utcnow()
        with Session(self.engine) as session:
            rows = session.execute(select(WebSession).where(WebSession.user_id == user_id)
                                   .order_by(WebSession.created_at)).scalars()
            records = [self._to_record(row) for row in rows]
        return [r for r in records if not r.is_expired(now)]

    def delete_for_user(self, user_id: int, keep: str | None = None) -> list[SessionRecord]:
        with Session(self.engine) as session, session.begin():
            stmt = select(WebSession).where(WebSession.user_id == user_id)
            if keep is not None:
                stmt = stmt.where(WebSession.key != keep)
            rows = session.execute(stmt.with_for_update()).scalars().all()
            records = [self._to_record(row) for row in rows]
            for row in rows:
                session.delete(row)
        return records

    def purge_expired(self) -> int:
        now = utcnow()
        removed = 0
        with Session(self.engine) as session, session.begin():
            removed += session.execute(
                delete(WebSession).where(WebSession.expires_at <= now)
            ).rowcount or 0
            # Idle expiry depends on each row's idle_seconds; check the candidates in Python.
            stale = session.execute(select(WebSession.key, WebSession.last_seen_at,
                                           WebSession.idle_seconds)).all()
            idle_keys = [k for k, seen, idle in stale if now >= seen + dt.timedelta(seconds=idle)]
            if idle_keys:
                removed += session.execute(
                    delete(WebSession).where(WebSession.key.in_(idle_keys))
                ).rowcount or 0
        return removed


class RedisSessionStore:
    """Sessions in Redis with a TTL, plus a set of session keys per user for listing."""

    PREFIX = "sk:session:"
    USER_PREFIX = "sk:user-sessions:"
    writes_audit = False

    def __init__(self, client: Any) -> None:
        self.redis = client

    def _ttl(self, record: SessionRecord) -> int:
        now = utcnow()
        idle_left = record.last_seen_at + dt.timedelta(seconds=record.idle_seconds) - now
        absolute_left = record.expires_at - now
        return max(1, int(min(idle_left, absolute_left).total_seconds()) + 1)

    def load(self, key: str) -> SessionRecord | None:
        raw = self.redis.get(self.PREFIX + key)
        return SessionRecord.from_json(raw) if raw else None

    def save(self, record: SessionRecord) -> None:
        pipe = self.redis.pipeline()
        pipe.set(self.PREFIX + record.key, record.to_json(), ex=self._ttl(record))
        if record.user_id is not None:
            user_key = f"{self.USER_PREFIX}{record.user_id}"
            pipe.sadd(user_key, record.key)
            user_ttl = int((record.expires_at - utcnow()).total_seconds()) + 60
            # NX sets a TTL on a new set (GT alone never does: no TTL counts as infinite);
            # GT then only ever extends it to the longest-living session.
            pipe.expire(user_key, user_ttl, nx=True)
            pipe.expire(user_key, user_ttl, gt=True)
        pipe.execute()

    def touch(self, record: SessionRecord) -> None:
        self.save(record)

    def replace(self, old_key: str, record: SessionRecord) -> None:
        self.delete(old_key)
        self.save(record)

    def delete(self, key: str) -> None:
        raw = self.redis.getdel(self.PREFIX + key)
        if raw:
            record = SessionRecord.from_json(raw)
            if record.user_id is not None:
                self.redis.srem(f"{self.USER_PREFIX}{record.user_id}", key)

    def list_for_user(self, user_id: int) -> list[SessionRecord]:
        user_key = f"{self.USER_PREFIX}{user_id}"
        keys = sorted(k.decode() if isinstance(k, bytes) else k
                      for k in self.redis.smembers(user_key))
        records = []
        for key in keys:
            record = self.load(key)
            if record is None:
                self.redis.srem(user_key, key)
            else:
                records.append(record)
        now = utcnow()
        return sorted((r for r in records if not r.is_expired(now)), key=lambda r: r.created_at)

    def delete_for_user(self, user_id: int, keep: str | None = None) -> list[SessionRecord]:
        removed = []
        for record in self.list_for_user(user_id):
            if record.key != keep:
                self.delete(record.key)
                removed.append(record)
        return removed

    def purge_expired(self) -> int:
        return 0  # Redis expires keys by TTL itself


class FallbackSessionStore:
    """Redis first, the database while Redis is unreachable (the documented reduced mode).

    ``guard`` (servicekonto.health.RedisGuard) decides whether Redis is tried and logs each
    change of state once. While Redis is down, sessions are read and written in the database;
    sessions that lived only in Redis are not visible (citizens may need to log in again).
    After Redis is back, a session created during the outage is still found in the database
    (a Redis miss falls through to it) and continues in Redis on its next write; per-user
    operations (list, end all sessions) cover both stores, so "log out everywhere" and
    disabling an account reach sessions in either.
    """

    #: Redis and the database cannot commit together: audit entries go to the database first.
    writes_audit = False

    def __init__(self, primary: RedisSessionStore, fallback: DatabaseSessionStore,
                 guard: Any) -> None:
        self.primary = primary
        self.fallback = fallback
        self.guard = guard

    def load(self, key: str) -> SessionRecord | None:
        record = self.guard.call(lambda: self.primary.load(key), lambda: None)
        if record is None:
            record = self.fallback.load(key)
        return record

    def save(self, record: SessionRecord) -> None:
        if self.guard.call(lambda: self.primary.save(record) or True, lambda: False):
            return
        self.fallback.save(record)

    def touch(self, record: SessionRecord) -> None:
        self.save(record)

    def replace(self, old_key: str, record: SessionRecord) -> None:
        self.delete(old_key)
        self.save(record)

    def delete(self, key: str) -> None:
        self.guard.call(lambda: self.primary.delete(key), lambda: None)
        self.fallback.delete(key)

    def list_for_user(self, user_id: int) -> list[SessionRecord]:
        seen: dict[str, SessionRecord] = {}
        for record in self.guard.call(lambda: self.primary.list_for_user(user_id), list):
            seen[record.key] = record
        for record in self.fallback.list_for_user(user_id):
            seen.setdefault(record.key, record)
        return sorted(seen.values(), key=lambda r: r.created_at)

    def delete_for_user(self, user_id: int, keep: str | None = None) -> list[SessionRecord]:
        removed = {r.key: r for r in self.guard.call(
            lambda: self.primary.delete_for_user(user_id, keep), list)}
        for record in self.fallback.delete_for_user(user_id, keep):
            removed.setdefault(record.key, record)
        return list(removed.values())

    def purge_expired(self) -> int:
        return self.fallback.purge_expired()
