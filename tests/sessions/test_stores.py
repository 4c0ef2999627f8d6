"""Both session stores behave the same: database (default) and Redis (when configured)."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
import redis

from servicekonto.db import utcnow
from servicekonto.sessions.stores import DatabaseSessionStore, RedisSessionStore, SessionRecord


@pytest.fixture(params=["database", "redis"])
def store(request, app):
    if request.param == "database":
        yield DatabaseSessionStore(app.extensions["servicekonto.db"].engine)
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    redis_store = RedisSessionStore(client)
    prefix = f"sk-test-{secrets.token_hex(6)}:"  # shared Redis: never touch others' keys
    redis_store.PREFIX = prefix + "session:"
    redis_store.USER_PREFIX = prefix + "user-sessions:"
    yield redis_store
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def new_record(user_id: int | None = None, *, age: dt.timedelta = dt.timedelta(0),
               idle_seconds: int = 3600, absolute: dt.timedelta = dt.timedelta(hours=12),
               seen_ago: dt.timedelta = dt.timedelta(0)) -> SessionRecord:
    now = utcnow()
    created = now - age
    return SessionRecord(key=secrets.token_hex(32), data={"lang": "en", "n": [1, 2]},
                         created_at=created, last_seen_at=now - seen_ago,
                         expires_at=created + absolute, idle_seconds=idle_seconds,
                         user_id=user_id)


def a_user_id() -> int:
    return 10**9 + secrets.randbelow(10**9)


def test_save_and_load(store):
    record = new_record(user_id=a_user_id())
    store.save(record)
    loaded = store.load(record.key)
    assert loaded == record
    assert loaded.created_at.tzinfo is not None
    assert store.load(secrets.token_hex(32)) is None


def test_save_overwrites(store):
    record = new_record()
    store.save(record)
    record.data = {"changed": True}
    store.save(record)
    assert store.load(record.key).data == {"changed": True}


def test_touch_moves_last_seen(store):
    record = new_record(seen_ago=dt.timedelta(minutes=10))
    store.save(record)
    record.last_seen_at = utcnow()
    store.touch(record)
    assert store.load(record.key).last_seen_at == record.last_seen_at


def test_delete(store):
    record = new_record(user_id=a_user_id())
    store.save(record)
    store.delete(record.key)
    assert store.load(record.key) is None
    assert store.list_for_user(record.user_id) == []
    store.delete(record.key)  # deleting twice is harmless


def test_replace_rotates_the_key(store):
    user = a_user_id()
    old = new_record()  # before login: no user
    store.save(old)
    new = new_record(user)
    store.replace(old.key, new)
    assert store.load(old.key) is None
    assert store.load(new.key) == new
    assert [r.key for r in store.list_for_user(user)] == [new.key]


def _statements(database, action):  # noqa: ANN001, ANN202
    """The SQL on ``web_sessions`` that ``action()`` sent through the app's engines (the
    audit sealer's own statements are not the write's) and how many transactions committed."""
    from sqlalchemy import event

    sent: list[str] = []
    commits: list[int] = []

    def on_execute(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        if "web_sessions" in statement:
            sent.append(statement)

    def on_commit(conn) -> None:  # noqa: ANN001
        commits.append(1)

    for engine in database.engines:
        event.listen(engine, "before_cursor_execute", on_execute)
        event.listen(engine, "commit", on_commit)
    try:
        action()
    finally:
        for engine in database.engines:
            event.remove(engine, "before_cursor_execute", on_execute)
            event.remove(engine, "commit", on_commit)
    return sent, len(commits)


def test_replace_is_one_atomic_write_in_the_database(app):
    """A login's rotation: DELETE and upsert commit together: one transaction (SQLite), one
    autocommit statement with the DELETE as a data-modifying CTE (PostgreSQL)."""
    database = app.extensions["servicekonto.db"]
    db_store = DatabaseSessionStore(database.engine, reader=database.reader)
    old = new_record()
    db_store.save(old)
    new = new_record(a_user_id())
    sent, commits = _statements(database, lambda: db_store.replace(old.key, new))
    if database.engine.dialect.name == "postgresql":
        [statement] = sent
        assert "DELETE FROM web_sessions" in statement and "INSERT INTO web_sessions" in statement
        assert commits == 0  # autocommit: the statement is its own transaction
    else:
        assert commits == 1
    assert db_store.load(old.key) is None
    assert db_store.load(new.key) == new


def _login_entry(user_id: int, *, without_actor: bool = False) -> dict:
    from servicekonto.audit.service import entry
    from servicekonto.audit.tags import AuditTag

    made = entry(AuditTag.ACCOUNT_LOGIN_SUCCESS, actor=f"citizen:{user_id}",
                 subject_user_id=user_id, details={"amr": ["pwd"]})
    return {**made, "actor": None} if without_actor else made


def _entries_of(app, user_id: int) -> list[str]:  # noqa: ANN001
    from sqlalchemy import select

    from servicekonto.audit.models import AuditEvent
    from servicekonto.db import db

    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.actor)
                                       .where(AuditEvent.subject_user_id == user_id)))


def _before_a_login(app):  # noqa: ANN001, ANN202
    """The database store, a citizen's id, a stored anonymous session and its successor."""
    database = app.extensions["servicekonto.db"]
    db_store = DatabaseSessionStore(database.engine, reader=database.reader)
    user = a_user_id()
    old = new_record()
    db_store.save(old)
    return database, db_store, user, old, new_record(user)


def test_audit_entries_commit_with_the_session_write(app):
    """The login's entry rides with the rotation: both are there afterwards..."""
    database, db_store, user, old, new = _before_a_login(app)
    sent, _ = _statements(database,
                          lambda: db_store.replace(old.key, new, audit=[_login_entry(user)]))
    assert _entries_of(app, user) == [f"citizen:{user}"]
    assert db_store.load(new.key) == new and db_store.load(old.key) is None
    if database.engine.dialect.name == "postgresql":  # the session write carried the entry
        assert len(sent) == 1 and "INSERT INTO audit_events" in sent[0]


def test_a_failing_audit_entry_leaves_the_old_session_and_writes_nothing(app):
    """... and when the entry cannot be written (here: no actor, NOT NULL), neither is the new
    session, and the old one is still there: one atomic unit, never half-written."""
    from sqlalchemy.exc import IntegrityError

    _, db_store, user, old, new = _before_a_login(app)
    with pytest.raises(IntegrityError):
        db_store.replace(old.key, new, audit=[_login_entry(user, without_actor=True)])
    assert db_store.load(old.key) == old
    assert db_store.load(new.key) is None
    assert _entries_of(app, user) == []


def test_list_and_delete_for_user(store):
    user, other = a_user_id(), a_user_id()
    first = new_record(user, age=dt.timedelta(minutes=5))
    second = new_record(user)
    expired = new_record(user, seen_ago=dt.timedelta(hours=2))
    foreign = new_record(other)
    for record in (second, first, expired, foreign):
        store.save(record)

    assert [r.key for r in store.list_for_user(user)] == [first.key, second.key]

    removed = store.delete_for_user(user, keep=second.key)
    assert first.key in {r.key for r in removed}
    assert store.load(first.key) is None
    assert store.load(second.key) is not None
    assert store.load(foreign.key) is not None

    store.delete_for_user(user)
    assert store.load(second.key) is None
    assert [r.key for r in store.list_for_user(other)] == [foreign.key]


def test_expiry_rules():
    now = utcnow()
    idle = new_record(seen_ago=dt.timedelta(minutes=61))
    absolute = new_record(age=dt.timedelta(hours=13))
    fresh = new_record(age=dt.timedelta(hours=11, minutes=59))
    assert idle.is_expired(now) and absolute.is_expired(now)
    assert not fresh.is_expired(now)


def test_purge_expired_database(app):
    store = DatabaseSessionStore(app.extensions["servicekonto.db"].engine)
    idle = new_record(seen_ago=dt.timedelta(minutes=61))
    absolute = new_record(age=dt.timedelta(hours=13))
    fresh = new_record()
    for record in (idle, absolute, fresh):
        store.save(record)
    assert store.purge_expired() == 2
    assert store.load(idle.key) is None and store.load(absolute.key) is None
    assert store.load(fresh.key) is not None


def test_redis_expires_by_ttl(redis_url):
    client = redis.Redis.from_url(redis_url)
    store = RedisSessionStore(client)
    store.PREFIX = f"sk-test-{secrets.token_hex(6)}:session:"
    record = new_record(idle_seconds=600)
    store.save(record)
    try:
        assert 590 <= client.ttl(store.PREFIX + record.key) <= 601
        nearly_over = new_record(age=dt.timedelta(hours=11, minutes=58))
        store.save(nearly_over)
        assert client.ttl(store.PREFIX + nearly_over.key) <= 121
        assert store.purge_expired() == 0  # nothing to do: Redis drops expired keys itself
    finally:
        client.delete(store.PREFIX + record.key, store.PREFIX + nearly_over.key)
        client.close()


def test_redis_user_index_expires_with_its_sessions(redis_url):
    client = redis.Redis.from_url(redis_url)
    store = RedisSessionStore(client)
    prefix = f"sk-test-{secrets.token_hex(6)}:"
    store.PREFIX, store.USER_PREFIX = prefix + "session:", prefix + "user-sessions:"
    user = a_user_id()
    try:
        store.save(new_record(user, age=dt.timedelta(hours=11)))
        user_key = f"{store.USER_PREFIX}{user}"
        first_ttl = client.ttl(user_key)
        assert 0 < first_ttl <= 60 * 60 + 61  # the set of a user's sessions does not live forever
        store.save(new_record(user))  # a newer session extends it
        assert client.ttl(user_key) > first_ttl
        store.save(new_record(user, age=dt.timedelta(hours=6)))  # an older one does not shorten
        assert client.ttl(user_key) > 11 * 3600
    finally:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()
