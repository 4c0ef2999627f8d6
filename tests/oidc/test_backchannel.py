"""OIDC Back-Channel Logout 1.0: logout tokens POSTed to portals, never blocking the citizen.

A fake portal (its own Flask app on a live server thread) receives the logout tokens.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
import requests
from flask import Flask, request
from joserfc import jwt
from sqlalchemy import select

from oidc.backchannel import BACKCHANNEL_EVENT, backoff_seconds, logout_cli
from oidc.models import LogoutDelivery
from servicekonto.audit.tags import AuditTag
from tests.support.backchannel import wait_for_deliveries
from tests.support.forms import parse_forms
from tests.support.live_server import LiveServer

LOGOUT_TARGET = "http://127.0.0.1:9/abgemeldet"


@dataclass
class Receiver:
    """A portal's back-channel endpoint that records what it got."""

    status: int = 200
    delay: float = 0.0
    received: list[dict] = field(default_factory=list)
    server: LiveServer | None = None

    def app(self) -> Flask:
        app = Flask("fake_portal")

        @app.post("/bc/<name>")
        def bc(name: str):  # noqa: ANN202
            time.sleep(self.delay)
            self.received.append({"portal": name, "content_type": request.content_type,
                                  "form": request.form.to_dict()})
            return "", self.status

        return app

    def start(self, port: int = 0) -> Receiver:
        self.server = LiveServer(self.app(), port=port).start()
        return self

    def url(self, name: str) -> str:
        assert self.server is not None
        return f"{self.server.url}/bc/{name}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    yield rec
    rec.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(provider) -> None:  # noqa: ANN001
    wait_for_deliveries(provider.app)


def _deliveries(provider) -> list[LogoutDelivery]:  # noqa: ANN001
    from servicekonto.db import db

    with provider.app.app_context():
        return list(db.session.scalars(select(LogoutDelivery).order_by(LogoutDelivery.id)))


def _portal(provider, name: str, backchannel_uri: str | None, **kwargs):  # noqa: ANN001, ANN003, ANN201
    return provider.portal(name, post_logout_redirect_uris=[LOGOUT_TARGET],
                           backchannel_logout_uri=backchannel_uri, **kwargs)


def _end_session(browser, token):  # noqa: ANN001, ANN201
    return browser.http.get(browser.base + "/end-session?" + urlencode({
        "id_token_hint": token["id_token"], "post_logout_redirect_uri": LOGOUT_TARGET}),
        allow_redirects=False)


def _logged_in(browser) -> bool:  # noqa: ANN001
    return browser.http.get(browser.base + "/account", allow_redirects=False).status_code == 200


def _verify(provider, logout_token: str) -> tuple[dict, dict]:  # noqa: ANN001
    decoded = jwt.decode(logout_token, provider.jwks(), algorithms=["RS256"])
    return decoded.header, decoded.claims


def test_logout_notifies_every_portal_of_the_session(provider, receiver):
    email = provider.citizen()
    browser = provider.browser()
    hund = _portal(provider, "Hundesteuer", receiver.url("hund"),
                   backchannel_logout_session_required=True)
    wohn = _portal(provider, "Wohngeld", receiver.url("wohn"))
    plain = _portal(provider, "Ohne Back-Channel", None)
    t_hund, _, _ = provider.login_flow(hund, browser, email)
    t_wohn, _, _ = provider.login_flow(wohn, browser)  # single sign-on: no password
    t_plain, _, _ = provider.login_flow(plain, browser)
    other_browser = provider.browser()  # another session of the same citizen stays untouched
    t_other, _, _ = provider.login_flow(hund, other_browser, email)

    response = _end_session(browser, t_hund)
    assert response.status_code == 302
    _wait(provider)

    assert sorted(r["portal"] for r in receiver.received) == ["hund", "wohn"]
    for item, portal, token in ((r, hund if r["portal"] == "hund" else wohn,
                                 t_hund if r["portal"] == "hund" else t_wohn)
                                for r in receiver.received):
        assert item["content_type"] == "application/x-www-form-urlencoded"
        header, claims = _verify(provider, item["form"]["logout_token"])
        id_claims = provider.id_claims(token["id_token"])
        assert header["typ"] == "logout+jwt"
        assert header["alg"] == "RS256"
        assert claims["iss"] == provider.issuer
        assert claims["aud"] == portal.client_id
        assert claims["sub"] == id_claims["sub"]
        assert claims["sid"] == id_claims["sid"]
        assert claims["events"] == {BACKCHANNEL_EVENT: {}}
        assert "nonce" not in claims
        assert claims["jti"]
        assert claims["iat"] <= time.time() + 1 < claims["exp"] <= claims["iat"] + 300

    # the session's tokens are revoked at every portal; the other session's are not
    for token in (t_hund, t_wohn, t_plain):
        assert requests.get(provider.base + "/userinfo", timeout=10, headers={
            "Authorization": f"Bearer {token['access_token']}"}).status_code == 401
    assert requests.get(provider.base + "/userinfo", timeout=10, headers={
        "Authorization": f"Bearer {t_other['access_token']}"}).status_code == 200
    assert _logged_in(other_browser)

    deliveries = _deliveries(provider)
    assert len(deliveries) == 2
    assert all(d.delivered_at is not None and d.attempts == 1 for d in deliveries)
    delivered = provider.audit(str(AuditTag.OIDC_BACKCHANNEL_LOGOUT_DELIVERED))
    assert sorted(e["client_id"] for e in delivered) == sorted([hund.client_id,
                                                                wohn.client_id])
    assert provider.audit(str(AuditTag.OIDC_BACKCHANNEL_LOGOUT_FAILED)) == []


def test_logout_on_the_account_pages_notifies_portals_too(provider, receiver):
    email = provider.citizen()
    browser = provider.browser()
    portal = _portal(provider, "Hundesteuer", receiver.url("hund"))
    provider.login_flow(portal, browser, email)
    page = browser.http.get(provider.base + "/logout")
    form = [f for f in parse_forms(page.text) if f["method"].lower() == "post"][-1]
    done = browser.http.post(provider.base + (form["action"] or "/logout"),
                             data=form["fields"], allow_redirects=False)
    assert done.status_code in (200, 302, 303)
    assert not _logged_in(browser)
    _wait(provider)
    assert [r["portal"] for r in receiver.received] == ["hund"]
    assert _deliveries(provider)[0].delivered_at is not None


def test_a_portal_that_is_down_does_not_block_logout_and_is_retried(provider):
    port = _free_port()
    email = provider.citizen()
    browser = provider.browser()
    portal = _portal(provider, "Hundesteuer", f"http://127.0.0.1:{port}/bc/hund")
    token, _, _ = provider.login_flow(portal, browser, email)

    started = time.monotonic()
    assert _end_session(browser, token).status_code == 302
    assert time.monotonic() - started < 3
    _wait(provider)
    [delivery] = _deliveries(provider)
    assert delivery.delivered_at is None and delivery.failed_at is None
    assert delivery.attempts == 1
    assert delivery.last_error
    assert delivery.next_attempt_at > delivery.created_at
    assert backoff_seconds(1) < backoff_seconds(2) < backoff_seconds(3)

    runner = provider.app.test_cli_runner()
    result = runner.invoke(logout_cli, ["deliver"])  # not due yet: nothing happens
    assert result.exit_code == 0, result.output
    assert "delivered 0" in result.output

    rec = Receiver().start(port=port)  # the portal is back
    try:
        result = runner.invoke(logout_cli, ["deliver", "--all"])
        assert result.exit_code == 0, result.output
        assert "delivered 1" in result.output
        assert len(rec.received) == 1
        _, claims = _verify(provider, rec.received[0]["form"]["logout_token"])
        assert claims["aud"] == portal.client_id
    finally:
        rec.stop()
    [delivery] = _deliveries(provider)
    assert delivery.delivered_at is not None
    assert delivery.attempts == 2
    assert len(provider.audit(str(AuditTag.OIDC_BACKCHANNEL_LOGOUT_DELIVERED))) == 1
    status = runner.invoke(logout_cli, ["status"])
    assert status.exit_code == 0 and status.output.strip() == ""


def test_a_slow_portal_does_not_slow_the_logout(provider):
    provider.app.config["SERVICEKONTO"]["backchannel_logout_timeout_seconds"] = 1
    slow = Receiver(delay=3).start()
    try:
        email = provider.citizen()
        browser = provider.browser()
        portal = _portal(provider, "Langsam", slow.url("slow"))
        token, _, _ = provider.login_flow(portal, browser, email)
        started = time.monotonic()
        assert _end_session(browser, token).status_code == 302
        assert time.monotonic() - started < 1.5
        _wait(provider)
        [delivery] = _deliveries(provider)
        assert delivery.delivered_at is None
        assert "Timeout" in (delivery.last_error or "")
    finally:
        slow.server.server.shutdown()  # the receiver thread may still sleep; do not wait


def test_gives_up_after_max_attempts_with_an_audit_event(provider):
    provider.app.config["SERVICEKONTO"]["backchannel_logout_max_attempts"] = 2
    failing = Receiver(status=500).start()
    try:
        email = provider.citizen()
        browser = provider.browser()
        portal = _portal(provider, "Kaputt", failing.url("broken"))
        token, _, _ = provider.login_flow(portal, browser, email)
        assert _end_session(browser, token).status_code == 302
        _wait(provider)
        [delivery] = _deliveries(provider)
        assert delivery.attempts == 1 and "HTTP 500" in delivery.last_error
        result = provider.app.test_cli_runner().invoke(logout_cli, ["deliver", "--all"])
        assert "given up 1" in result.output
    finally:
        failing.stop()
    [delivery] = _deliveries(provider)
    assert delivery.failed_at is not None and delivery.attempts == 2
    failed = provider.audit(str(AuditTag.OIDC_BACKCHANNEL_LOGOUT_FAILED))
    assert [e["client_id"] for e in failed] == [portal.client_id]
    assert "token" not in failed[0]["details"]


def test_concurrent_workers_deliver_once(provider, receiver):
    """The claim (a lease on next_attempt_at) keeps two workers from POSTing the same row."""
    from oidc.backchannel import DeliveryReport, deliver_one

    email = provider.citizen()
    portal = _portal(provider, "Hundesteuer", receiver.url("hund"))
    port = _free_port()
    with provider.app.app_context():
        from oidc.models import Client
        from servicekonto.db import db

        client = db.session.scalar(select(Client).where(Client.client_id == portal.client_id))
        client.backchannel_logout_uri = f"http://127.0.0.1:{port}/down"
        db.session.commit()
    browser = provider.browser()
    token, _, _ = provider.login_flow(portal, browser, email)
    assert _end_session(browser, token).status_code == 302
    _wait(provider)
    with provider.app.app_context():
        client = db.session.scalar(select(Client).where(Client.client_id == portal.client_id))
        client.backchannel_logout_uri = receiver.url("hund")
        db.session.commit()
    [delivery] = _deliveries(provider)
    database = provider.app.extensions["servicekonto.db"]
    settings = provider.app.config["SERVICEKONTO"]
    barrier = threading.Barrier(4)
    reports = [DeliveryReport() for _ in range(4)]

    def worker(i: int) -> None:
        with provider.app.app_context(), database.independent_session() as session:
            from sqlalchemy import update

            if i == 0:  # make it due
                session.execute(update(LogoutDelivery).values(
                    next_attempt_at=delivery.created_at))
                session.commit()
            barrier.wait()
            deliver_one(session, delivery.id, settings, reports[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(receiver.received) == 1
    assert sum(len(r.delivered) for r in reports) == 1


def test_a_failure_while_queueing_never_blocks_the_logout(provider, receiver, monkeypatch):
    email = provider.citizen()
    browser = provider.browser()
    portal = _portal(provider, "Hundesteuer", receiver.url("hund"))
    token, _, _ = provider.login_flow(portal, browser, email)

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("subject service down")

    monkeypatch.setattr("oidc.subjects.subject_for", broken)
    assert _end_session(browser, token).status_code == 302
    assert not _logged_in(browser)
    assert len(provider.audit(str(AuditTag.OIDC_LOGOUT))) == 1
    assert _deliveries(provider) == []


def test_queue_logout_for_one_portal_without_a_session(provider, receiver):
    """What consent withdrawal uses: a logout token with sub only, after the caller commits."""
    from oidc.backchannel import queue_logout
    from oidc.models import Client
    from servicekonto.db import db

    email = provider.citizen()
    portal = _portal(provider, "Wohngeld", receiver.url("wohn"))
    token, _, _ = provider.login_flow(portal, provider.browser(), email)
    with provider.app.app_context():
        client = db.session.scalar(select(Client).where(Client.client_id == portal.client_id))
        queued = queue_logout(db.session, user_id=provider.user_id(email), sid=None,
                              clients=[client], revoke_session_tokens=False)
        assert len(queued) == 1
        assert receiver.received == []  # nothing is sent before the commit
        db.session.commit()
    _wait(provider)
    [item] = receiver.received
    _, claims = _verify(provider, item["form"]["logout_token"])
    assert claims["sub"] == provider.id_claims(token["id_token"])["sub"]
    assert "sid" not in claims


def test_disabling_an_account_ends_its_sessions_and_notifies_their_portals(provider, receiver):
    from servicekonto.cli import users

    email = provider.citizen()
    browser = provider.browser()
    portal = _portal(provider, "Hundesteuer", receiver.url("hund"))
    token, _, _ = provider.login_flow(portal, browser, email)
    assert _logged_in(browser)

    result = provider.app.test_cli_runner().invoke(users, ["disable", email])
    assert result.exit_code == 0, result.output
    _wait(provider)

    assert not _logged_in(browser)
    assert [r["portal"] for r in receiver.received] == ["hund"]
    _header, claims = _verify(provider, receiver.received[0]["form"]["logout_token"])
    assert claims["sub"] == provider.id_claims(token["id_token"])["sub"]
    assert requests.get(provider.base + "/userinfo", timeout=10, headers={
        "Authorization": f"Bearer {token['access_token']}"}).status_code == 401


def test_a_clock_step_back_does_not_park_a_fresh_logout(provider, receiver, monkeypatch):
    """The thread started by the logout's commit delivers at once even when this host's clock
    reads earlier than when the logout was queued; the cron path keeps the due rule."""
    import datetime as dt

    import oidc.backchannel as backchannel
    from servicekonto.db import utcnow

    email = provider.citizen()
    browser = provider.browser()
    portal = _portal(provider, "Hundesteuer", receiver.url("hund"))
    token, _, _ = provider.login_flow(portal, browser, email)
    started: list[dict] = []
    real_start = backchannel.start_delivery_thread

    def held(app, ids, queued_at=None):  # noqa: ANN001, ANN202 - record, deliver below
        started.append({"ids": ids, "queued_at": queued_at})

    monkeypatch.setattr(backchannel, "start_delivery_thread", held)
    assert _end_session(browser, token).status_code == 302
    [call] = started
    assert call["queued_at"] is not None
    monkeypatch.setattr(backchannel, "utcnow", lambda: utcnow() - dt.timedelta(seconds=30))
    database = provider.app.extensions["servicekonto.db"]
    settings = provider.app.config["SERVICEKONTO"]
    with provider.app.app_context(), database.independent_session() as session:
        report = backchannel.deliver_pending(session, settings, ids=call["ids"])
        assert report.delivered == [] and receiver.received == []  # not due by this clock
    real_start(provider.app, call["ids"], queued_at=call["queued_at"])
    _wait(provider)
    assert [r["portal"] for r in receiver.received] == ["hund"]
    [delivery] = _deliveries(provider)
    assert delivery.delivered_at is not None and delivery.attempts == 1
