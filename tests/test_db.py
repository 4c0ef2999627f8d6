"""Database plumbing: UTC timestamps, SQLite pragmas, one session per application context."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from servicekonto.db import UTCDateTime, db, make_engine, utcnow
from servicekonto.settings import load_settings


def test_utcnow_is_aware_utc():
    now = utcnow()
    assert now.tzinfo is not None and now.utcoffset() == dt.timedelta(0)


def test_utc_datetime_type():
    column = UTCDateTime()
    berlin = dt.timezone(dt.timedelta(hours=1))
    stored = column.process_bind_param(dt.datetime(2026, 1, 1, 13, 0, tzinfo=berlin), None)
    assert stored == dt.datetime(2026, 1, 1, 12, 0)  # naive UTC in the database
    loaded = column.process_result_value(stored, None)
    assert loaded == dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert column.process_bind_param(None, None) is None
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(dt.datetime(2026, 1, 1, 12, 0), None)


def test_sqlite_engine_pragmas(tmp_path):
    settings = load_settings({"env": "testing", "instance_path": str(tmp_path),
                              "database_url": f"sqlite:///{tmp_path / 'p.db'}"}, environ={})
    engine = make_engine(settings)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    engine.dispose()
    memory = make_engine({**settings, "database_url": "sqlite://"})
    with memory.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    memory.dispose()


def test_one_session_per_app_context(app):
    with app.app_context():
        first = db.session
        assert db.session is first
        with app.app_context():
            assert db.session is not first  # a nested context gets its own unit of work
    with app.app_context():
        assert db.session is not first


def test_session_is_rolled_back_when_the_context_ends(app):
    from sqlalchemy import func, select

    from servicekonto.audit import AuditTag, record
    from servicekonto.audit.models import AuditEvent

    with app.app_context():
        record(db.session, AuditTag.ACCOUNT_LOGOUT, actor="system")
        db.session.flush()  # written but never committed
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 0


@pytest.mark.postgres
def test_postgres_statement_timeout(migrated_database):
    settings = load_settings({"env": "testing", "database_url": migrated_database,
                              "database_statement_timeout_ms": 1234}, environ={})
    engine = make_engine(settings)
    with engine.connect() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar() == "1234ms"
    engine.dispose()


def test_reader_is_autocommit_and_disposed_with_the_engine(app):
    """``db.reader``: autocommit for the hot paths. PostgreSQL: a pool of its own whose
    connections stay in autocommit (no switching per checkout); SQLite: the engine's pool."""
    database = app.extensions["servicekonto.db"]
    postgres = database.engine.dialect.name == "postgresql"

    def autocommit(driver) -> bool:  # noqa: ANN001 - psycopg or sqlite3 connection
        return driver.autocommit if postgres else driver.isolation_level is None

    with database.reader.connect() as conn:
        conn.execute(text("SELECT 1"))
        driver = conn.connection.dbapi_connection
        assert autocommit(driver)
        if postgres:
            from psycopg.pq import TransactionStatus

            assert driver.info.transaction_status == TransactionStatus.IDLE
        else:
            assert not driver.in_transaction
    with database.engine.connect() as conn:  # the transactional pool is unaffected
        assert not autocommit(conn.connection.dbapi_connection)
    if database.engine.dialect.name == "postgresql":
        assert database.engines == (database.engine, database.reader)
        assert database.reader.pool is not database.engine.pool
        assert database.reader.pool.checkedin() >= 1
    else:
        assert database.engines == (database.engine,)
    database.dispose()
    assert all(engine.pool.checkedin() == 0 for engine in database.engines)
