"""servicekonto.prepared: hot-path statements on the driver's cursor give exactly what
``conn.execute`` gives (rows, types, row counts, errors), on a real PostgreSQL server; other
drivers take ``conn.execute`` itself."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    Enum,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc

from servicekonto import prepared
from servicekonto.db import UTCDateTime, utcnow
from tests.support.databases import temporary_postgres_database


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


metadata = MetaData()
things = Table(
    "prepared_things", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(40), unique=True, nullable=False),
    Column("colour", Enum(Colour, native_enum=False, length=10), nullable=False),
    Column("seen_at", UTCDateTime(), nullable=True),
    Column("extra", JSON, nullable=True),
)

BY_NAME = select(things).where(things.c.name == bindparam("name"))
BLUE_BY_NAME = select(things.c.id, things.c.seen_at).where(
    things.c.name == bindparam("name"), things.c.colour == Colour.BLUE)
INSERT = insert(things)
INSERT_RETURNING = insert(things).returning(things.c.id, things.c.seen_at)
RENAME = (update(things).where(things.c.name == bindparam("old"))
          .values(name=bindparam("new")).returning(things.c.id))
IN_LIST = select(things.c.id).where(things.c.name.in_(bindparam("names", expanding=True)))
COLUMNS = ("name", "colour", "seen_at", "extra")


def _engine(url: str) -> Iterator[Engine]:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    metadata.create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def pg(postgres_server_url: str) -> Iterator[Engine]:
    with temporary_postgres_database(postgres_server_url) as url:
        yield from _engine(url)


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Engine]:
    yield from _engine(f"sqlite:///{tmp_path / 'prepared.db'}")


def _row(name: str, colour: Colour = Colour.BLUE, **extra: Any) -> dict[str, Any]:
    return {"name": name, "colour": colour, "seen_at": utcnow(), "extra": {"k": [1, 2]},
            **extra}


def test_hot_statements_take_the_driver_path(pg: Engine) -> None:
    """The statements the protocol endpoints run compile for the fast path (a silent fallback
    would only cost speed, so it is checked here)."""
    from oidc import userinfo
    from oidc.token_management import _PEEK
    from servicekonto.audit import service

    dialect = pg.dialect
    assert prepared._compiled(userinfo._LOOKUP, dialect) is not None
    for statement in _PEEK.values():
        assert prepared._compiled(statement, dialect) is not None
    assert prepared._compiled(service._INSERT, dialect, service._ENTRY_COLUMNS) is not None


def test_rows_equal_what_conn_execute_returns(pg: Engine) -> None:
    with pg.connect() as conn:
        prepared.execute(conn, INSERT, _row("a"), columns=COLUMNS)
        prepared.execute(conn, INSERT, _row("b", Colour.RED, seen_at=None, extra=None),
                         columns=COLUMNS)
        for name in ("a", "b", "missing"):
            fast = prepared.fetch_first(conn, BY_NAME, {"name": name})
            slow = conn.execute(BY_NAME, {"name": name}).first()
            assert (fast is None) == (slow is None)
            if slow is not None:
                assert tuple(fast) == tuple(slow)
                assert fast.colour is Colour(slow.colour) and isinstance(fast.colour, Colour)
                assert fast.extra == slow.extra
        a = prepared.fetch_first(conn, BY_NAME, {"name": "a"})
        assert a.seen_at.tzinfo is dt.UTC  # UTCDateTime's result processor ran
        assert a.extra == {"k": [1, 2]}
        # The statement's own literal (colour = 'blue') is bound too.
        assert prepared.fetch_first(conn, BLUE_BY_NAME, {"name": "a"}) is not None
        assert prepared.fetch_first(conn, BLUE_BY_NAME, {"name": "b"}) is None


def test_returning_and_row_counts(pg: Engine) -> None:
    when = dt.datetime(2026, 12, 1, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    with pg.connect() as conn:
        rows = prepared.fetch_all(conn, INSERT_RETURNING, _row("c", seen_at=when),
                                  columns=COLUMNS)
        assert len(rows) == 1
        # Compiled for other columns (here: with "id"): conn.execute takes the call.
        assert len(prepared.fetch_all(conn, INSERT_RETURNING, _row("c2"))) == 1
        # UTCDateTime's bind processor stored UTC, its result processor made it aware again.
        assert rows[0].seen_at == when and rows[0].seen_at.tzinfo is dt.UTC
        assert conn.execute(text("SELECT seen_at FROM prepared_things WHERE name = 'c'")
                            ).scalar() == dt.datetime(2026, 12, 1, 7, 30)
        assert [r.id for r in prepared.fetch_all(conn, RENAME, {"old": "c", "new": "d"})] == \
            [rows[0].id]
        assert prepared.fetch_all(conn, RENAME, {"old": "c", "new": "e"}) == []
        assert prepared.execute(conn, update(things).where(things.c.name == bindparam("n"))
                                .values(extra=None), {"n": "d"}) == 1


def test_naive_datetimes_are_refused_as_before(pg: Engine) -> None:
    with pg.connect() as conn, pytest.raises(ValueError, match="naive"):
        prepared.execute(conn, INSERT, _row("naive", seen_at=dt.datetime(2026, 1, 1)),
                         columns=COLUMNS)


def test_driver_errors_become_sqlalchemy_errors(pg: Engine) -> None:
    with pg.connect() as conn:
        prepared.execute(conn, INSERT, _row("dup"), columns=COLUMNS)
        with pytest.raises(sa_exc.IntegrityError) as caught:
            prepared.execute(conn, INSERT, _row("dup"), columns=COLUMNS)
        assert "prepared_things" in str(caught.value)
        # The connection stays usable (autocommit: nothing to roll back).
        assert prepared.fetch_first(conn, BY_NAME, {"name": "dup"}) is not None


def test_a_dropped_connection_is_invalidated_and_replaced(pg: Engine) -> None:
    with pg.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    killer = create_engine(pg.url, isolation_level="AUTOCOMMIT")
    with killer.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    killer.dispose()
    with pg.connect() as conn:  # the pool hands out the connection whose backend is gone
        with pytest.raises(sa_exc.DBAPIError) as caught:
            prepared.fetch_first(conn, BY_NAME, {"name": "x"})
        assert caught.value.connection_invalidated
    with pg.connect() as conn:
        assert prepared.fetch_first(conn, BY_NAME, {"name": "x"}) is None


def test_statement_listeners_see_driver_path_statements(pg: Engine) -> None:
    seen: list[str] = []

    def listener(_conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(pg, "before_cursor_execute", listener)
    try:
        with pg.connect() as conn:
            prepared.fetch_first(conn, BY_NAME, {"name": "x"})
    finally:
        event.remove(pg, "before_cursor_execute", listener)
    assert len(seen) == 1 and "FROM prepared_things" in seen[0]


def test_statements_it_cannot_compile_faithfully_fall_back(pg: Engine) -> None:
    with pg.connect() as conn:
        prepared.execute(conn, INSERT, _row("in1"), columns=COLUMNS)
        assert prepared._compiled(IN_LIST, pg.dialect) is None
        rows = prepared.fetch_all(conn, IN_LIST, {"names": ["in1", "nope"]})
        assert len(rows) == 1


def test_a_transactional_connection_keeps_sqlalchemys_transaction(pg: Engine) -> None:
    """Outside autocommit the driver path would begin a transaction SQLAlchemy does not know
    of; such connections take ``conn.execute``, so commit and rollback mean what they say."""
    transactional = create_engine(pg.url)
    try:
        with transactional.connect() as conn:
            prepared.execute(conn, INSERT, _row("kept"), columns=COLUMNS)
            conn.commit()
            prepared.execute(conn, INSERT, _row("dropped"), columns=COLUMNS)
            conn.rollback()
        with pg.connect() as conn:
            assert prepared.fetch_first(conn, BY_NAME, {"name": "kept"}) is not None
            assert prepared.fetch_first(conn, BY_NAME, {"name": "dropped"}) is None
    finally:
        transactional.dispose()


def test_other_drivers_use_conn_execute(lite: Engine) -> None:
    assert prepared._compiled(BY_NAME, lite.dialect) is None
    with lite.connect() as conn:
        assert prepared.execute(conn, INSERT, _row("s"), columns=COLUMNS) == 1
        row = prepared.fetch_first(conn, BY_NAME, {"name": "s"})
        assert row.name == "s" and row.seen_at.tzinfo is dt.UTC
        assert len(prepared.fetch_all(conn, INSERT_RETURNING, _row("t"))) == 1
