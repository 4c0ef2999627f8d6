"""Faults: an instance killed mid-burst, PostgreSQL restarted, Redis stopped.

The fault tests start their own PostgreSQL cluster and their own redis-server; the shared
servers of the other test runs are never touched.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.oidc.conftest import TIMEOUT, http_get, http_post
from tests.scaleout.conftest import (
    Instance,
    PrivatePostgres,
    RedisServer,
    make_cluster,
    wait_until,
)

pytestmark = pytest.mark.postgres


def cc_token(base: str, portal: Any) -> requests.Response:
    return http_post(base + "/token", data={"grant_type": "client_credentials"},
                     auth=(portal.client_id, portal.secret), timeout=10)


def cc_portal(provider: Any) -> Any:
    return provider.portal("Fachverfahren", scope="openid", redirect_uri=None,
                           grant_types=["client_credentials"])


def assert_clean_failure(response: requests.Response) -> None:
    """A failure while a dependency is down: 503 with Retry-After, never a stack trace."""
    assert response.status_code == 503, (response.status_code, response.text[:500])
    assert response.headers.get("Retry-After"), response.headers
    assert "Traceback" not in response.text and "sqlalchemy" not in response.text.lower()


# -- kill -9 one of two instances during a burst ---------------------------------------------

def test_kill_9_one_instance_during_a_burst(cluster):
    from sqlalchemy import func, select

    from oidc.clients import get_client
    from servicekonto.audit.models import AuditEvent
    from servicekonto.consent.service import load
    from servicekonto.db import db

    via = cluster.provider("nginx")
    service = cc_portal(via)
    portal = via.portal("Bürgerportal")
    citizens = [via.citizen() for _ in range(8)]

    results: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def token_job(i: int) -> None:
        try:
            response = cc_token(via.base, service)
            outcome = ("token", response.json()["access_token"]) if response.status_code == 200 \
                else ("failed", response.status_code)
        except (requests.RequestException, ValueError) as exc:
            outcome = ("failed", type(exc).__name__)
        with lock:
            results.append((str(i), outcome))

    def login_job(i: int) -> None:
        email = citizens[i % len(citizens)]
        try:
            token, _rp, _landing = via.login_flow(portal, via.browser(), email)
            outcome = ("login", (email, token["access_token"]))
        except Exception as exc:  # noqa: BLE001 - any failure of the flow is a result
            outcome = ("failed", type(exc).__name__)
        with lock:
            results.append((str(i), outcome))

    jobs = [(login_job if i % 4 == 0 else token_job, i) for i in range(48)]
    killed_at = None
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        futures = []
        for n, (job, i) in enumerate(jobs):
            futures.append(pool.submit(job, i))
            if n == 16:
                time.sleep(0.3)  # requests in flight on both instances
                cluster.instances["a"].kill9()
                killed_at = len(futures)
        concurrent.futures.wait(futures, timeout=300)
    assert killed_at is not None

    succeeded = [outcome for _i, outcome in results if outcome[0] != "failed"]
    failed = [outcome for _i, outcome in results if outcome[0] == "failed"]
    # Only requests in flight on A when it died may fail (nginx retries what never reached A).
    assert len(failed) <= 6, failed
    assert len(succeeded) >= len(jobs) - 6

    # B keeps serving, through nginx and directly.
    for _ in range(5):
        assert cc_token(via.base, service).status_code == 200
    assert http_get(cluster.instances["b"].url + "/readyz").status_code == 200

    # Everything the clients were told succeeded is committed: tokens, consents, audit entries.
    b = cluster.provider("b")
    for kind, value in succeeded:
        if kind == "token":
            active = http_post(b.base + "/oauth/introspect", data={"token": value},
                               auth=(service.client_id, service.secret)).json()
            assert active["active"] is True
        else:
            email, access = value
            info = http_get(b.base + "/userinfo", headers={"Authorization": f"Bearer {access}"})
            assert info.status_code == 200
            with cluster.app.app_context():
                client = get_client(portal.client_id, session=db.session)
                consent = load(db.session, b.user_id(email), client.id)
                assert consent is not None and "profile" in consent.granted_scopes
    with cluster.app.app_context():
        issued = db.session.scalar(select(func.count()).select_from(AuditEvent)
                                   .where(AuditEvent.tag == "oidc:token:issued"))
    assert issued >= len(succeeded) + 5

    # The audit chain: whatever A left unsealed is sealed now, and the whole chain verifies.
    instance_b = cluster.instances["b"]
    sealed = instance_b.cli("audit", "seal")
    assert sealed.returncode == 0, sealed.stderr
    verified = instance_b.cli("audit", "verify", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr


# -- PostgreSQL restarted during a burst -----------------------------------------------------

@pytest.fixture
def private_postgres(postgres_server_url: str):
    """A PostgreSQL cluster of our own (restarting the shared one would break other runs)."""
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        from sqlalchemy import create_engine

        from servicekonto.migrate import upgrade

        engine = create_engine(server.url)
        upgrade(engine)
        engine.dispose()
        yield server
    finally:
        server.destroy()


def test_postgres_restart_during_a_burst_fails_cleanly_and_recovers(
        tmp_path: Path, private_postgres: PrivatePostgres, mailbox: Any) -> None:
    cluster = make_cluster(tmp_path, private_postgres.url, "", mailbox.port, names=("a",),
                           with_nginx=False)
    instance = cluster.instances["a"]
    try:
        instance.start(workers=1, threads=4)
        via = cluster.provider("a")
        service = cc_portal(via)
        cluster.app.extensions["servicekonto.db"].dispose()
        email = via.citizen()
        browser = via.browser()
        assert browser.login(email).status_code in (302, 303)

        stop = threading.Event()
        seen: list[tuple[str, int, str, dict[str, str]]] = []

        def hammer() -> None:
            while not stop.is_set():
                for name, call in (
                        ("token", lambda: cc_token(via.base, service)),
                        ("readyz", lambda: http_get(via.base + "/readyz", timeout=10)),
                        ("account", lambda: browser.http.get(via.base + "/account",
                                                             allow_redirects=False,
                                                             timeout=TIMEOUT))):
                    try:
                        response = call()
                        seen.append((name, response.status_code, response.text,
                                     dict(response.headers)))
                    except requests.RequestException as exc:
                        seen.append((name, -1, type(exc).__name__, {}))
                time.sleep(0.05)

        worker = threading.Thread(target=hammer, daemon=True)
        worker.start()
        time.sleep(1.5)
        private_postgres.stop()
        time.sleep(3)
        down_until = len(seen)
        private_postgres.start()
        recovered = wait_until(lambda: cc_token(via.base, service).status_code == 200, 30, 0.5,
                               "the token endpoint to recover without an app restart")
        time.sleep(1)
        stop.set()
        worker.join(30)
        assert recovered

        statuses = {(name, status) for name, status, _t, _h in seen}
        assert all(status != -1 for _n, status, _t, _h in seen), "connection-level failure"
        failures = [(n, s, t, h) for n, s, t, h in seen if s >= 500]
        assert failures, f"no request saw the database down: {statuses}"
        for name, status, text, headers in failures:
            assert status == 503, (name, status, text[:300])
            assert headers.get("Retry-After"), (name, headers)
            assert "Traceback" not in text and "psycopg" not in text.lower()
        for name, status, _t, _h in seen[:down_until]:
            assert status in (200, 302, 503), (name, status)
        # After the restart: every kind of request works again, in the same processes.
        assert cc_token(via.base, service).status_code == 200
        assert http_get(via.base + "/readyz").json()["checks"]["database"]["ok"] is True
        assert browser.http.get(via.base + "/account", allow_redirects=False,
                                timeout=TIMEOUT).status_code == 200  # still logged in
        assert instance.proc is not None and instance.proc.poll() is None
        assert "Traceback" not in "".join(t for _n, _s, t, _h in seen)
    finally:
        instance.stop()
        cluster.app.extensions["servicekonto.db"].dispose()


# -- Redis stopped: the documented reduced mode ---------------------------------------------

def test_redis_down_reduced_mode_and_back(tmp_path: Path, scaleout_database: str,
                                          redis_url: str, mailbox: Any) -> None:
    redis_server = RedisServer(tmp_path / "redis").start()
    cluster = make_cluster(tmp_path, scaleout_database, redis_server.url, mailbox.port,
                           names=("a", "b"), with_nginx=False)
    instances: list[Instance] = list(cluster.instances.values())
    try:
        for instance in instances:
            instance.start(workers=1, threads=4)
        a, b = cluster.provider("a"), cluster.provider("b")
        email = a.citizen()
        portal = a.portal()
        service = cc_portal(a)
        browser = a.browser()
        a.login_flow(portal, browser, email)
        assert http_get(a.base + "/readyz").json()["status"] == "ok"

        redis_server.stop()

        # Readiness stays 200 (the instance serves) but says "degraded" and why.
        report = http_get(a.base + "/readyz")
        assert report.status_code == 200
        assert report.json()["status"] == "degraded"
        assert report.json()["checks"]["redis"]["mode"] == "reduced"

        # The Redis session is gone: the citizen logs in again (sessions now in PostgreSQL),
        # and that session is shared by both instances through the database.
        token, _rp, _landing = a.login_flow(portal, browser, email)
        assert "/login" in browser.pages
        browser.base = b.base
        seen = len(browser.pages)
        b.login_flow(portal, browser)  # SSO on B in reduced mode
        assert "/login" not in browser.pages[seen:]
        # Tokens, userinfo, client credentials work; failed logins are still throttled
        # (per process now: the account locks after login_account_failures on this instance).
        assert http_get(b.base + "/userinfo", headers={
            "Authorization": f"Bearer {token['access_token']}"}).status_code == 200
        assert cc_token(a.base, service).status_code == 200
        statuses = [a.browser().login(email, "wrong-password-123").status_code
                    for _ in range(7)]
        assert statuses[-1] == 429, statuses

        # One warning per state change, not per request.
        time.sleep(0.5)
        log_a = instances[0].log.read_text()
        assert log_a.count("redis unavailable") == 1, log_a[-2000:]

        # Redis back: normal mode within the guard's retry interval.
        redis_server.start()
        wait_until(lambda: http_get(a.base + "/readyz").json()["status"] == "ok", 15, 0.5,
                   "readiness to report Redis back")
        assert "redis available again" in instances[0].log.read_text()
        # The session made during the outage (database) still works after the switch back.
        seen = len(browser.pages)
        b.login_flow(portal, browser)
        assert "/login" not in browser.pages[seen:]
    finally:
        for instance in instances:
            instance.stop()
        redis_server.stop()
        cluster.app.extensions["servicekonto.db"].dispose()
