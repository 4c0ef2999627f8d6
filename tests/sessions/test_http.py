"""Server-side sessions through HTTP: cookie flags, hashed store keys, timeouts, rotation."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from flask import session

from servicekonto.sessions.interface import hash_token

COOKIE = "sk_session"


@pytest.fixture
def app(app):
    """The shared app plus two routes that rotate and destroy the session."""

    def rotate() -> str:
        session["counter"] = session.get("counter", 0) + 1
        session.rotate()
        return "rotated"

    def destroy() -> str:
        session.destroy()
        return "gone"

    app.add_url_rule("/_test/rotate", "test_rotate", rotate)
    app.add_url_rule("/_test/destroy", "test_destroy", destroy)
    return app


def session_cookie(response) -> str | None:
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(COOKIE + "="):
            return header
    return None


def cookie_value(client) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    return cookie.value


def store_of(app):
    return app.extensions["servicekonto.session_store"]


def page_lang(response) -> str:
    html = response.get_data(as_text=True)
    return html.split('<html lang="', 1)[1].split('"', 1)[0]


def test_no_cookie_without_session_data(client):
    response = client.get("/")
    assert session_cookie(response) is None


def test_cookie_flags(client):
    header = session_cookie(client.get("/?lang=en"))
    assert header is not None
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header
    assert "Secure" not in header  # session_cookie_secure = false in the test settings
    assert "Path=/" in header


@pytest.mark.parametrize("settings_overrides", [{"session_cookie_secure": True}])
def test_cookie_is_secure_when_configured(client):
    header = session_cookie(client.get("/?lang=en"))
    assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header


def test_store_key_is_the_sha256_of_the_cookie(app, client):
    client.get("/?lang=en")
    token = cookie_value(client)
    assert len(token) >= 43  # 32 random bytes
    store = store_of(app)
    assert store.load(token) is None
    record = store.load(hashlib.sha256(token.encode()).hexdigest())
    assert record is not None and record.data == {"lang": "en"}
    assert page_lang(client.get("/")) == "en"  # remembered server-side


def test_basic_level_limits_are_12h_and_60min(app, client):
    client.get("/?lang=en")
    record = store_of(app).load(hash_token(cookie_value(client)))
    assert record.idle_seconds == 60 * 60
    assert record.expires_at - record.created_at == dt.timedelta(hours=12)


def age(app, client, **changes) -> str:
    store = store_of(app)
    key = hash_token(cookie_value(client))
    record = store.load(key)
    for name, delta in changes.items():
        setattr(record, name, getattr(record, name) - delta)
    store.save(record)
    return key


def test_idle_timeout_ends_the_session(app, client):
    client.get("/?lang=en")
    key = age(app, client, last_seen_at=dt.timedelta(minutes=59))
    assert page_lang(client.get("/")) == "en"  # still inside the idle limit (and touched)
    key = age(app, client, last_seen_at=dt.timedelta(minutes=61))
    assert page_lang(client.get("/")) == "de"  # 61 minutes idle: gone
    assert store_of(app).load(key) is None


def test_absolute_timeout_ends_an_active_session(app, client):
    client.get("/?lang=en")
    key = age(app, client, created_at=dt.timedelta(hours=12, minutes=1),
              expires_at=dt.timedelta(hours=12, minutes=1))
    assert page_lang(client.get("/")) == "de"
    assert store_of(app).load(key) is None


def test_activity_does_not_extend_the_absolute_limit(app, client):
    client.get("/?lang=en")
    key = age(app, client, created_at=dt.timedelta(hours=11), expires_at=dt.timedelta(hours=11))
    client.get("/?lang=de")  # modified: saved again
    record = store_of(app).load(key)
    assert record.expires_at - record.created_at == dt.timedelta(hours=12)
    assert dt.timedelta(minutes=59) < record.expires_at - record.last_seen_at \
        <= dt.timedelta(hours=1)


def test_reading_touches_last_seen_after_a_minute(app, client):
    client.get("/?lang=en")
    key = age(app, client, last_seen_at=dt.timedelta(minutes=5))
    before = store_of(app).load(key).last_seen_at
    client.get("/")
    assert store_of(app).load(key).last_seen_at > before + dt.timedelta(minutes=4)


def test_forged_cookie_gets_a_fresh_session(app, client):
    client.set_cookie(COOKIE, "forged-value-that-was-never-issued")
    response = client.get("/")
    assert response.status_code == 200 and page_lang(response) == "de"
    response = client.get("/?lang=en")
    new_token = cookie_value(client)
    assert new_token != "forged-value-that-was-never-issued"
    assert store_of(app).load(hash_token("forged-value-that-was-never-issued")) is None
    assert store_of(app).load(hash_token(new_token)).data == {"lang": "en"}
    client.set_cookie(COOKIE, "x" * 500)  # absurdly long: ignored, not looked up
    assert client.get("/").status_code == 200


def test_rotate_issues_a_new_id_and_keeps_the_data(app, client):
    client.get("/?lang=en")
    old_token = cookie_value(client)
    response = client.get("/_test/rotate")
    new_token = cookie_value(client)
    assert session_cookie(response) is not None
    assert new_token != old_token
    assert store_of(app).load(hash_token(old_token)) is None
    assert store_of(app).load(hash_token(new_token)).data == {"lang": "en", "counter": 1}


def test_destroy_removes_session_and_cookie(app, client):
    client.get("/?lang=en")
    token = cookie_value(client)
    response = client.get("/_test/destroy")
    assert "Max-Age=0" in session_cookie(response) or "expires=Thu, 01 Jan 1970" in \
        session_cookie(response)
    assert store_of(app).load(hash_token(token)) is None
    assert client.get_cookie(COOKIE) is None
