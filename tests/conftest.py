"""Shared fixtures: a migrated database (SQLite, or PostgreSQL when DATABASE_URL is set), the
app built through create_app, a real SMTP server, and real servers for PostgreSQL/Redis tests.

Each test starts from empty tables (wiped after every test) so tests never see each other.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from servicekonto import create_app
from servicekonto.translations_build import compile_all
from tests.support.databases import (
    temporary_postgres_database,
    temporary_sqlite_database,
    wipe,
)
from tests.support.live_server import LiveServer
from tests.support.mailbox import Mailbox
from tests.support.pg_available import reachable

IN_CI = os.environ.get("CI") == "true"
DATABASE_URL = os.environ.get("DATABASE_URL", "")
ON_POSTGRES = DATABASE_URL.startswith("postgresql")
PG_SERVER_URL = os.environ.get("TEST_POSTGRES_URL",
                               "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TEST_SECRET = "test-secret-key-0123456789-abcdefghijklmnop"


def pytest_configure(config: pytest.Config) -> None:
    compile_all()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """PostgreSQL-only tests run in the PostgreSQL pass (make test runs both passes)."""
    if ON_POSTGRES:
        return
    skip = pytest.mark.skip(reason="PostgreSQL-only test: runs in the PostgreSQL pass "
                                   "(DATABASE_URL=postgresql+psycopg://...)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    return f"servicekonto database: {'PostgreSQL ' + DATABASE_URL if ON_POSTGRES else 'SQLite'}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if ON_POSTGRES:
        if not reachable(DATABASE_URL):
            pytest.exit(f"DATABASE_URL is set but PostgreSQL does not answer: {DATABASE_URL}", 2)
        with temporary_postgres_database(DATABASE_URL) as url:
            yield url
    else:
        with temporary_sqlite_database(tmp_path_factory.mktemp("db")) as url:
            yield url


@pytest.fixture(scope="session")
def migrated_database(database_url: str) -> str:
    """The test database with every Alembic migration applied (the real upgrade path)."""
    from sqlalchemy import create_engine

    from servicekonto.migrate import upgrade

    engine = create_engine(database_url)
    upgrade(engine)
    engine.dispose()
    return database_url


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture
def outbox(mailbox: Mailbox) -> Mailbox:
    mailbox.clear()
    return mailbox


def base_settings(database_url: str, instance: Path, mailbox: Mailbox) -> dict[str, Any]:
    return {
        "env": "testing",
        "database_url": database_url,
        "instance_path": str(instance),
        "secret_key": TEST_SECRET,
        "issuer": "http://localhost",
        "session_cookie_secure": False,
        "mail_smtp_host": "127.0.0.1",
        "mail_smtp_port": mailbox.port,
        "log_level": "WARNING",
        "allow_loopback_http": True,
        "rsa_key_bits": 2048,  # key generation speed in tests; production minimum is 3072
    }


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its app."""
    return {}


@pytest.fixture
def app(migrated_database: str, tmp_path: Path, mailbox: Mailbox,
        settings_overrides: dict[str, Any]) -> Iterator[Flask]:
    mailbox.clear()
    application = create_app({**base_settings(migrated_database, tmp_path / "instance", mailbox),
                              **settings_overrides})
    yield application
    database = application.extensions["servicekonto.db"]
    wipe(database.engine)
    database.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The app over real HTTP on a free loopback port (issuer set to its URL)."""
    server = LiveServer(app)
    app.config["SERVICEKONTO"]["issuer"] = server.url
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """A reachable PostgreSQL server URL (for tests that need PostgreSQL specifically)."""
    url = DATABASE_URL if ON_POSTGRES else PG_SERVER_URL
    if not reachable(url):
        if IN_CI:
            pytest.fail(f"PostgreSQL not reachable at {url} (required in CI)")
        pytest.skip(f"PostgreSQL not reachable at {url}")
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis (database 15, flushed per use by the tests that need it)."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError:
        if IN_CI:
            pytest.fail(f"Redis not reachable at {REDIS_URL} (required in CI)")
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    return REDIS_URL
