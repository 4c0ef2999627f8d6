"""Hot-path statements run on the driver's cursor (PostgreSQL/psycopg), compiled once.

Why: on the protocol endpoints SQLAlchemy Core's per-execution machinery (execution context,
result metadata built from ``cursor.description``, cache-key lookup) costs about 0.12-0.15 ms of
CPU per statement on top of the driver; that is a quarter to a third of a userinfo or
client_credentials request (bench/micro_orm.py, docs/performance.md "Fourth round"). For the
few statements every protocol request runs, ``fetch_first`` / ``fetch_all`` / ``execute``
compile the Core statement once per dialect with SQLAlchemy and then run the compiled SQL on
the pooled connection's DBAPI cursor.

What is kept from SQLAlchemy: the SQL text (its compiler, bind casts included), the column
types' bind and result processors (``UTCDateTime``, enums), the engine's
``before_cursor_execute`` listeners (the client cache's invalidation, the statement counting in
tests), the mapping of driver errors to ``sqlalchemy.exc`` (``DBAPIError.instance``) and the
invalidation of a connection the server dropped. Rows come back as named tuples with the same
attribute names as SQLAlchemy's ``Row``.

Only psycopg connections in autocommit (``Database.reader``) take this path. Every other
connection (SQLite in-process, where the overhead is not a network client's; a connection
inside a SQLAlchemy transaction) and any statement this module cannot compile faithfully
(expanding IN parameters, names that need escaping, duplicate result column names) run through
``conn.execute`` as before, with identical results; tests/test_prepared.py compares the two.
"""

from __future__ import annotations

import collections
import keyword
import threading
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect

Processor = Callable[[Any], Any] | None


class _Compiled:
    """One statement compiled for one dialect: SQL, bind defaults and processors, row type."""

    __slots__ = ("sql", "required", "defaults", "bind_processors", "row_type",
                 "result_processors")

    def __init__(self, statement: Any, dialect: Dialect,
                 columns: tuple[str, ...] | None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=columns)
        if (compiled.literal_execute_params or compiled.post_compile_params
                or getattr(compiled, "escaped_bind_names", None)):
            raise _NotSupported("needs render-time parameter handling")
        self.sql: str = compiled.string
        binds = compiled.binds
        required = {name: None for name, bind in binds.items() if bind.required}
        #: Parameters a call must bring; a call without them (an ``insert(table)`` compiled
        #: for other ``columns``) takes ``conn.execute``, which compiles for what it got.
        self.required = frozenset(required)
        #: Values of the statement's own literals (``where(col == "x")``), filled once.
        self.defaults: dict[str, Any] = {
            name: value for name, value in compiled.construct_params(required).items()
            if name not in required}
        self.bind_processors: list[tuple[str, Callable[[Any], Any]]] = []
        for name, bind in binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.bind_processors.append((name, processor))
        self.row_type: type | None = None
        self.result_processors: list[Processor] = []
        # A SELECT's columns, or an INSERT/UPDATE's RETURNING columns (none: no result rows).
        results = list(getattr(statement, "exported_columns", ()) or ())
        if results:
            keys = [column.key for column in results]
            if (len(set(keys)) != len(keys)
                    or any(not k.isidentifier() or keyword.iskeyword(k) or k.startswith("_")
                           for k in keys)):
                raise _NotSupported("result column names SQLAlchemy would resolve differently")
            self.row_type = collections.namedtuple("Row", keys)  # type: ignore[misc]
            self.result_processors = [
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in results]

    def parameters(self, params: Mapping[str, Any]) -> dict[str, Any]:
        values = {**self.defaults, **params}
        for name, processor in self.bind_processors:
            if name in values:
                values[name] = processor(values[name])
        return values

    def row(self, raw: tuple[Any, ...]) -> Any:
        assert self.row_type is not None
        return self.row_type(*[value if processor is None or value is None
                                else processor(value)
                                for value, processor in zip(raw, self.result_processors,
                                                            strict=True)])


class _NotSupported(Exception):
    """This statement takes the ordinary ``conn.execute`` path."""


_UNSUPPORTED = object()
_cache: dict[tuple[Any, ...], tuple[Any, Any]] = {}
_cache_lock = threading.Lock()


def _dialect_key(dialect: Dialect) -> tuple[Any, ...]:
    return (dialect.name, dialect.driver, dialect.server_version_info,
            getattr(dialect, "paramstyle", None))


def _compiled(statement: Any, dialect: Dialect,
              columns: tuple[str, ...] | None = None) -> _Compiled | None:
    """The statement compiled for ``dialect``, or None where the fast path does not apply.
    ``columns``: for an INSERT whose values come with the parameters, the columns they fill.
    Statements are module-level constants; the cache holds each (and its compiled form) for
    the life of the process."""
    if dialect.driver != "psycopg":
        return None
    key = (id(statement), _dialect_key(dialect), columns)
    found = _cache.get(key)
    if found is None or found[0] is not statement:
        try:
            compiled: Any = _Compiled(statement, dialect, columns)
        except _NotSupported:
            compiled = _UNSUPPORTED
        with _cache_lock:
            _cache[key] = found = (statement, compiled)
    return None if found[1] is _UNSUPPORTED else found[1]


def _run(conn: Connection, compiled: _Compiled, params: Mapping[str, Any],
         fetch: Callable[[Any], Any]) -> Any:
    values = compiled.parameters(params)
    fairy = conn.connection
    cursor = fairy.cursor()
    try:
        conn.dispatch.before_cursor_execute(conn, cursor, compiled.sql, values, None, False)
        cursor.execute(compiled.sql, values)
        return fetch(cursor)
    except conn.dialect.loaded_dbapi.Error as error:
        dialect = conn.dialect
        dropped = dialect.is_disconnect(error, fairy.dbapi_connection, cursor)
        if dropped:
            conn.invalidate(error)
        raise sa_exc.DBAPIError.instance(
            compiled.sql, values, error, dialect.loaded_dbapi.Error,
            connection_invalidated=dropped, dialect=dialect) from error
    finally:
        cursor.close()


def _usable(conn: Connection, compiled: _Compiled | None, params: Mapping[str, Any],
            rows: bool) -> bool:
    """Whether the driver path may take this call. Only on a connection in autocommit: on a
    transactional one the driver would begin a transaction SQLAlchemy does not know of (and
    a later ``commit()`` of the Connection would not end it)."""
    return (compiled is not None and (compiled.row_type is not None) == rows
            and compiled.required.issubset(params)
            and conn.connection.dbapi_connection.autocommit)


def fetch_first(conn: Connection, statement: Any, params: Mapping[str, Any], *,
                columns: tuple[str, ...] | None = None) -> Any:
    """``conn.execute(statement, params).first()``: the first row or None."""
    compiled = _compiled(statement, conn.dialect, columns)
    if not _usable(conn, compiled, params, rows=True):
        return conn.execute(statement, params).first()
    raw = _run(conn, compiled, params, lambda cursor: cursor.fetchone())
    return None if raw is None else compiled.row(raw)


def fetch_all(conn: Connection, statement: Any, params: Mapping[str, Any], *,
              columns: tuple[str, ...] | None = None) -> list[Any]:
    """``conn.execute(statement, params).all()``: every row."""
    compiled = _compiled(statement, conn.dialect, columns)
    if not _usable(conn, compiled, params, rows=True):
        return list(conn.execute(statement, params).all())
    raws = _run(conn, compiled, params, lambda cursor: cursor.fetchall())
    return [compiled.row(raw) for raw in raws]


def execute(conn: Connection, statement: Any, params: Mapping[str, Any], *,
            columns: tuple[str, ...] | None = None) -> int:
    """``conn.execute(statement, params)`` for a statement without result rows (one parameter
    set); returns the row count the driver reports. For ``insert(table)`` without values, pass
    the ``columns`` the parameters fill (always the same ones for one call site)."""
    compiled = _compiled(statement, conn.dialect, columns)
    if not _usable(conn, compiled, params, rows=False):
        return conn.execute(statement, params).rowcount
    return _run(conn, compiled, params, lambda cursor: cursor.rowcount)
