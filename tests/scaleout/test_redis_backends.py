"""Redis backends of the jti replay cache and the client JWKS cache, and their fallbacks."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time

import pytest
import redis
from sqlalchemy import func, select

from oidc.client_auth import JWKSCache, PrivateKeyJWT, RedisJWKSStore
from oidc.models import UsedAssertion
from servicekonto import create_app
from servicekonto.health import RedisGuard
from tests.conftest import base_settings


@pytest.fixture
def settings_overrides(redis_url):
    return {"redis_url": redis_url}


def claims() -> dict:
    return {"iss": f"client-{secrets.token_hex(4)}", "exp": int(time.time()) + 60}


def used_rows(app) -> int:
    from servicekonto.db import db

    return db.session.scalar(select(func.count()).select_from(UsedAssertion))


def test_jti_single_use_in_redis(app):
    method = PrivateKeyJWT()
    c = claims()
    with app.app_context():
        assert method.validate_jti(c, "jti-1") is True
        assert method.validate_jti(c, "jti-1") is False  # replay
        assert method.validate_jti(c, "jti-2") is True
        assert used_rows(app) == 0  # Redis held them, not the table


def test_jti_falls_back_to_the_table_when_redis_is_down(migrated_database, tmp_path, mailbox):
    app = create_app({**base_settings(migrated_database, tmp_path, mailbox),
                      "redis_url": "redis://127.0.0.1:1/0"})
    method = PrivateKeyJWT()
    c = claims()
    try:
        with app.app_context():
            assert method.validate_jti(c, "jti-down") is True
            assert method.validate_jti(c, "jti-down") is False
            assert used_rows(app) == 1
    finally:
        from tests.support.databases import wipe

        wipe(app.extensions["servicekonto.db"].engine)


def test_after_an_outage_the_table_is_still_consulted(app):
    """An assertion used while Redis was down (recorded in the table) cannot be replayed once
    Redis is back."""
    method = PrivateKeyJWT()
    c = claims()
    guard: RedisGuard = app.extensions["servicekonto.redis_guard"]
    with app.app_context():
        guard.failed(redis.ConnectionError("simulated"))
        guard._retry_at = 0.0
        digest = hashlib.sha256(f"{c['iss']}\x00jti-x".encode()).hexdigest()
        expires = dt.datetime.fromtimestamp(c["exp"] + 30, dt.UTC)
        assert method._record_in_database(digest, expires)  # used during the outage
        assert method.validate_jti(c, "jti-x") is False  # Redis did not know it; the table did
        assert guard.up


def test_client_jwks_documents_are_shared_between_instances(redis_url):
    client = redis.Redis.from_url(redis_url)
    uri = f"https://portal.example/jwks-{secrets.token_hex(4)}.json"
    document = {"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
                          "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                          "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}
    fetches = []

    def fetch(u, allow_loopback_http):
        fetches.append(u)
        return document

    class Portal:
        jwks = None
        jwks_uri = uri

    try:
        one = JWKSCache(300, fetch=fetch, shared=RedisJWKSStore(client, RedisGuard(client), 300))
        two = JWKSCache(300, fetch=fetch, shared=RedisJWKSStore(client, RedisGuard(client), 300))
        assert [k.kid for k in one.keys_for(Portal).keys] == ["k1"]
        assert [k.kid for k in two.keys_for(Portal).keys] == ["k1"]
        assert fetches == [uri]  # the second instance used the shared document
        two.refresh(Portal)  # an unknown kid forces a fetch, shared again
        assert fetches == [uri, uri]
    finally:
        client.delete(RedisJWKSStore(client, None, 1)._key(uri))
        client.close()


def test_client_jwks_cache_works_per_process_when_redis_is_down():
    down = redis.Redis(port=1, socket_connect_timeout=0.5)
    fetches = []

    class Portal:
        jwks = None
        jwks_uri = "https://portal.example/jwks.json"

    def fetch(u, allow_loopback_http):
        fetches.append(u)
        return {"keys": []}

    cache = JWKSCache(300, fetch=fetch, shared=RedisJWKSStore(down, RedisGuard(down), 300))
    cache.keys_for(Portal)
    cache.keys_for(Portal)
    assert len(fetches) == 1
