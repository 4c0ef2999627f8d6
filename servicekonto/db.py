"""Database: declarative base, UTC timestamps and the request-scoped session.

Plain SQLAlchemy 2.0 (no Flask-SQLAlchemy): the engine lives on the app
(``app.extensions["servicekonto.db"]``), ``db.session`` is scoped to the application context and
removed when it ends, so a request never sees another request's unit of work.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator
from werkzeug.local import LocalProxy

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """Timezone-aware current time in UTC (the only clock the models use)."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores naive UTC, returns aware UTC: SQLite has no time zones, PostgreSQL gets the same."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use servicekonto.db.utcnow()")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


def make_engine(settings: dict[str, Any], *, autocommit: bool = False) -> Engine:
    """Create the engine for ``database_url`` with pool and timeout settings per dialect.
    ``autocommit``: every connection of the pool in autocommit from the start (PostgreSQL)."""
    url: str = settings["database_url"]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            if ":memory:" not in url and url != "sqlite://":
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine

    connect_args: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    timeout = settings["database_statement_timeout_ms"]
    if url.startswith("postgresql") and timeout:
        connect_args["options"] = f"-c statement_timeout={int(timeout)}"
    if url.startswith("postgresql"):
        connect_args["connect_timeout"] = 5
    if autocommit:
        extra["isolation_level"] = "AUTOCOMMIT"
    return create_engine(
        url,
        **extra,
        # A ping is one extra round trip per request; without it a connection the server
        # closed (restart, failover) fails one request and the pool is then invalidated.
        pool_pre_ping=settings.get("database_pool_pre_ping", True),
        pool_size=settings["database_pool_size"],
        max_overflow=settings["database_max_overflow"],
        pool_recycle=settings["database_pool_recycle_seconds"],
        connect_args=connect_args,
    )


class Database:
    """The app's engine and its application-context-scoped session."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.reader: Engine | None = None
        self._factory: sessionmaker[Session] | None = None
        self._scoped: scoped_session[Session] | None = None

    def init_app(self, app: Flask, settings: dict[str, Any]) -> None:
        self.engine = make_engine(settings)
        #: For hot requests whose statements are each complete on their own (introspection's
        #: SELECT; userinfo's SELECT and audit INSERT; client credentials' one INSERT ... CTE
        #: on PostgreSQL): autocommit spares the BEGIN and COMMIT/ROLLBACK round trips of a
        #: transaction. Every write through it must be atomic as one statement. On PostgreSQL
        #: it is a pool of its own whose connections stay in autocommit, instead of switching a
        #: pooled connection to autocommit and back on every checkout (about 0.08 ms of CPU
        #: per request on an idle host; docs/performance.md, "Fourth round"). SQLite: the same
        #: pool, switched.
        if self.engine.dialect.name == "postgresql":
            self.reader = make_engine(settings, autocommit=True)
        else:
            self.reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        from flask.globals import app_ctx

        self._scoped = scoped_session(
            self._factory, scopefunc=lambda: id(app_ctx._get_current_object()))
        app.extensions["servicekonto.db"] = self

        @app.teardown_appcontext
        def _remove_session(_exc: BaseException | None) -> None:
            self._scoped.remove()  # rolls back anything not committed

    @property
    def engines(self) -> tuple[Engine, ...]:
        """Every engine with a pool of its own (the transactional one first)."""
        assert self.engine is not None and self.reader is not None
        if self.reader.pool is self.engine.pool:
            return (self.engine,)
        return (self.engine, self.reader)

    def dispose(self) -> None:
        """Close every pooled connection (tests, forks, shutdown)."""
        for engine in self.engines:
            engine.dispose()

    @property
    def session(self) -> Session:
        assert self._scoped is not None, "Database.init_app was not called"
        return self._scoped()

    @contextmanager
    def independent_session(self) -> Iterator[Session]:
        """A session outside the request's unit of work (for work that must commit on its own)."""
        assert self._factory is not None
        session = self._factory()
        try:
            yield session
        finally:
            session.close()


def get_db() -> Database:
    """The Database of the current app."""
    return current_app.extensions["servicekonto.db"]


#: ``db.session`` in views and services: the current app's request-scoped session.
db: Database = LocalProxy(get_db)  # type: ignore[assignment]
