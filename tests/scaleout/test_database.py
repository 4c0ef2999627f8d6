"""PostgreSQL engine settings of servicekonto/db.py: statement timeout, pool, pre-ping."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from servicekonto.db import make_engine
from servicekonto.settings import load_settings

pytestmark = pytest.mark.postgres


def engine_for(url: str, **overrides):
    settings = load_settings({"env": "testing", "database_url": url, **overrides}, environ={})
    return make_engine(settings)


def test_statement_timeout_cancels_a_slow_statement(scaleout_database):
    engine = engine_for(scaleout_database, database_statement_timeout_ms=200)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "200ms"
            with pytest.raises(OperationalError) as caught:
                conn.execute(text("SELECT pg_sleep(2)"))
            assert "statement timeout" in str(caught.value)
    finally:
        engine.dispose()


def test_pool_settings_and_pre_ping(scaleout_database):
    engine = engine_for(scaleout_database, database_pool_size=3, database_max_overflow=2)
    try:
        assert engine.pool.size() == 3
        assert engine.pool._max_overflow == 2
        assert engine.pool._pre_ping is True
        with engine.connect() as conn:
            backend = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        # The server drops the pooled connection (as a PostgreSQL restart or failover would):
        # pre-ping notices and hands out a fresh one instead of failing the next request.
        killer = engine_for(scaleout_database)
        with killer.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        killer.dispose()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != backend
    finally:
        engine.dispose()
