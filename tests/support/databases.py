"""Throw-away test databases: a fresh SQLite file, or a fresh database on a PostgreSQL server."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, inspect, make_url, text


@contextmanager
def temporary_postgres_database(server_url: str) -> Iterator[str]:
    """CREATE a uniquely named database on the server of ``server_url``; DROP it afterwards."""
    url = make_url(server_url)
    name = f"sk_test_{secrets.token_hex(6)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def temporary_sqlite_database(folder: Path) -> Iterator[str]:
    yield f"sqlite:///{folder / 'test.db'}"


def wipe(engine) -> None:  # noqa: ANN001
    """Empty every table (between tests) and restart the audit chain."""
    names = [n for n in inspect(engine).get_table_names() if n != "alembic_version"]
    genesis = "0" * 64
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            quoted = ", ".join(f'"{n}"' for n in names)
            conn.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
        else:
            conn.execute(text("PRAGMA foreign_keys=OFF"))
            for name in names:
                conn.execute(text(f'DELETE FROM "{name}"'))
            has_sequence = conn.execute(text(
                "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")).first()
            if has_sequence:
                conn.execute(text("DELETE FROM sqlite_sequence"))
            conn.execute(text("PRAGMA foreign_keys=ON"))
        conn.execute(text("INSERT INTO audit_chain_head (id, last_seq, last_hash) "
                          f"VALUES (1, 0, '{genesis}')"))
