"""/healthz and /readyz: JSON, no secrets, honest about the database, migrations, keys, Redis."""

from __future__ import annotations

import json
import logging

from servicekonto import create_app
from tests.conftest import TEST_SECRET, base_settings


def _keys(app) -> None:
    from oidc.keys import public_jwks

    with app.app_context():
        public_jwks()  # creates the signing keys (testing creates them on first use)


def test_healthz_is_json_and_checks_nothing(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_ready_with_database_migrations_and_keys(app, client):
    _keys(app)
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    report = response.json
    assert report["status"] == "ok"
    assert report["checks"]["database"]["ok"]
    assert report["checks"]["migrations"]["ok"]
    assert report["checks"]["signing_keys"]["ok"]
    assert "redis" not in report["checks"]  # not configured
    text = response.get_data(as_text=True)
    assert TEST_SECRET not in text and "postgresql" not in text and "sqlite" not in text


def test_readyz_without_signing_keys_is_not_ready(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.json["checks"]["signing_keys"] == {
        "ok": False, "missing": ["RS256", "PS256", "ES256"]}


def test_readyz_unmigrated_database_is_not_ready(tmp_path, mailbox):
    app = create_app(base_settings(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path, mailbox))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    migrations = response.json["checks"]["migrations"]
    assert migrations["ok"] is False and migrations["revision"] is None
    assert "db upgrade" in migrations["note"]


def test_readyz_database_down_is_503_json_without_trace(tmp_path, mailbox):
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}"
    app = create_app(base_settings(url, tmp_path, mailbox))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["status"] == "unavailable"
    assert response.json["checks"]["database"]["ok"] is False
    assert "Traceback" not in response.get_data(as_text=True)
    assert app.test_client().get("/healthz").status_code == 200  # liveness unaffected


def test_readyz_redis_down_is_degraded_not_unready_and_warns_once(
        migrated_database, tmp_path, mailbox, caplog):
    app = create_app({**base_settings(migrated_database, tmp_path, mailbox),
                      "redis_url": "redis://127.0.0.1:1/0"})
    _keys(app)
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="servicekonto.health"):
        for _ in range(3):
            response = client.get("/readyz")
            assert response.status_code == 200
            assert response.json["status"] == "degraded"
            assert response.json["checks"]["redis"]["ok"] is False
            assert "sessions in the database" in response.json["checks"]["redis"]["reduced_mode"]
            client.get("/?lang=en")  # a session write in reduced mode: no 503
    warnings = [r for r in caplog.records if "redis unavailable" in r.getMessage()]
    assert len(warnings) == 1  # one per change of state, not per request
    json.dumps(response.json)
    from tests.support.databases import wipe

    wipe(app.extensions["servicekonto.db"].engine)


def test_redis_guard_logs_each_change_once(caplog):
    import redis

    from servicekonto.health import RedisGuard

    guard = RedisGuard(client=None, retry_seconds=0)

    def down():
        raise redis.ConnectionError("refused")

    with caplog.at_level(logging.WARNING, logger="servicekonto.health"):
        assert [guard.call(down, lambda: "fallback") for _ in range(3)] == ["fallback"] * 3
        assert not guard.up
        assert [guard.call(lambda: "redis", lambda: "fallback") for _ in range(3)] == \
            ["redis"] * 3
        assert guard.up
    messages = [r.getMessage() for r in caplog.records]
    assert sum("redis unavailable" in m for m in messages) == 1
    assert sum("available again" in m for m in messages) == 1
    assert guard.recently_down(60)


def test_redis_guard_skips_redis_for_a_while_after_a_failure():
    import redis

    from servicekonto.health import RedisGuard

    guard = RedisGuard(client=None, retry_seconds=60)
    calls = []

    def down():
        calls.append(1)
        raise redis.ConnectionError("refused")

    guard.call(down, lambda: None)
    guard.call(down, lambda: None)
    assert len(calls) == 1  # the second request did not wait for a timeout again
