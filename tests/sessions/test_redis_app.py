"""An app configured with ``redis_url`` keeps its sessions in Redis."""

from __future__ import annotations

import pytest
import redis

from servicekonto.sessions.interface import hash_token
from servicekonto.sessions.stores import RedisSessionStore


@pytest.fixture
def settings_overrides(redis_url):
    return {"redis_url": redis_url}


def test_app_with_redis_url_keeps_sessions_in_redis(app, client, redis_url):
    store = app.extensions["servicekonto.session_store"]
    # Redis first; the database only while Redis is down (reduced mode, servicekonto/health.py)
    assert isinstance(store.primary, RedisSessionStore)
    client.get("/?lang=en")
    key = hash_token(client.get_cookie("sk_session").value)
    direct = redis.Redis.from_url(redis_url)
    try:
        assert direct.exists(RedisSessionStore.PREFIX + key)
        assert store.load(key).data == {"lang": "en"}
        assert 'lang="en"' in client.get("/").get_data(as_text=True)
        # Not in the database.
        from servicekonto.sessions.stores import DatabaseSessionStore

        assert DatabaseSessionStore(app.extensions["servicekonto.db"].engine).load(key) is None
    finally:
        direct.delete(RedisSessionStore.PREFIX + key)
        direct.close()


def test_redis_down_runs_in_reduced_mode_not_a_traceback(migrated_database, tmp_path, mailbox):
    """Redis down: sessions fall back to the database (docs/operations.md, reduced mode)."""
    from servicekonto import create_app
    from tests.conftest import base_settings

    app = create_app({**base_settings(migrated_database, tmp_path, mailbox),
                      "redis_url": "redis://127.0.0.1:1/0"})
    client = app.test_client()
    client.set_cookie("sk_session", "some-session-token")
    response = client.get("/")
    assert response.status_code == 200  # an unknown session: a fresh one, from the database
    assert "Traceback" not in response.get_data(as_text=True)


def test_a_login_with_redis_sessions_writes_its_audit_entry(app, client, redis_url):
    """Redis and the database cannot commit together: the login's success entry is written
    on its own, before the session goes to Redis (``ServerSideSession.audit_with_write``)."""
    from servicekonto.audit.tags import AuditTag
    from tests.accounts.conftest import audit_tags, login, make_user

    user = make_user(app)
    client.get("/login")
    assert login(client, user.email).status_code == 302
    assert audit_tags(app, user.id).count(str(AuditTag.ACCOUNT_LOGIN_SUCCESS)) == 1
    key = hash_token(client.get_cookie("sk_session").value)
    direct = redis.Redis.from_url(redis_url)
    try:
        assert direct.exists(RedisSessionStore.PREFIX + key)  # the rotated session, in Redis
        assert client.get("/account").status_code == 200
    finally:
        direct.delete(RedisSessionStore.PREFIX + key)
        direct.close()
