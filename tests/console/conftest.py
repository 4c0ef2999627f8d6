"""Fixtures for the account console tests: citizens logged in through the real forms (test
client), the Provider harness (live server, browsers, Authlib portals) and a fake
back-channel logout receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from servicekonto.audit.models import AuditEvent
from servicekonto.db import db
from tests.accounts.conftest import PASSWORD, login, make_user, text  # noqa: F401
from tests.oidc.conftest import Provider, http_get, http_post  # noqa: F401
from tests.oidc.test_backchannel import Receiver
from tests.support.backchannel import wait_for_deliveries
from tests.support.forms import parse_forms
from tests.support.live_server import LiveServer

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0"
SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Cheap Argon2 parameters: the console is under test here, not the hash's cost."""
    return {"argon2_memory_kib": 1024, "argon2_time_cost": 1}


@pytest.fixture
def provider(app: Flask, live_server: LiveServer) -> Iterator[Provider]:
    yield Provider(app, live_server)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    yield rec
    rec.stop()


def events(app: Flask, tag: str, user_id: int | None = None) -> list[dict[str, Any]]:
    with app.app_context():
        stmt = select(AuditEvent).where(AuditEvent.tag == tag).order_by(AuditEvent.id)
        if user_id is not None:
            stmt = stmt.where(AuditEvent.subject_user_id == user_id)
        return [{"user": e.subject_user_id, "client_id": e.client_id, "actor": e.actor,
                 "details": json.loads(e.details)} for e in db.session.scalars(stmt)]


def post_form(client, url: str, data: dict | None = None, index: int = 0, **kwargs):  # noqa: ANN001, ANN201
    """GET the page, POST its form ``index`` with ``data`` over the defaults (CSRF included)."""
    page = client.get(url, **kwargs)
    assert page.status_code == 200, (url, page.status_code)
    form = parse_forms(page.get_data(as_text=True))[index]
    return client.post(form["action"] or url, data={**form["fields"], **(data or {})},
                       **kwargs)


def browser_post(browser, path: str, data: dict | None = None, index: int = 0):  # noqa: ANN001, ANN201
    """The same for a Provider browser (requests.Session against the live server)."""
    page = browser.http.get(browser.base + path)
    assert page.status_code == 200, (path, page.status_code, page.url)
    form = parse_forms(page.text)[index]
    action = form["action"] or path
    if action.startswith("/"):
        action = browser.base + action
    elif not action.startswith("http"):
        action = page.url
    return browser.http.post(action, data={**form["fields"], **(data or {})},
                             allow_redirects=False)


LOGOUT_TARGET = "http://127.0.0.1:9/abgemeldet"


def bc_portal(provider: Provider, name: str, receiver: Receiver, *,
              scope: str = "openid profile email address", **kwargs: Any):  # noqa: ANN201
    """A portal with a back-channel logout URI at the fake receiver."""
    return provider.portal(name, scope=scope, post_logout_redirect_uris=[LOGOUT_TARGET],
                           backchannel_logout_uri=receiver.url(name), **kwargs)


def wait_deliveries(provider: Provider) -> None:
    wait_for_deliveries(provider.app)


def assert_delivered(provider: Provider, receiver: Receiver, portals: list[str]) -> None:
    """The receiver got logout tokens for exactly ``portals``; on a mismatch the message shows
    the delivery rows (queued? claimed? failed why?), not just two lists."""
    got = sorted(r["portal"] for r in receiver.received)
    if got != sorted(portals):
        from oidc.models import LogoutDelivery

        with provider.app.app_context():
            rows = [{"id": d.id, "client_pk": d.client_pk, "sid": d.sid,
                     "next_attempt_at": d.next_attempt_at, "attempts": d.attempts,
                     "delivered_at": d.delivered_at, "last_error": d.last_error}
                    for d in db.session.scalars(select(LogoutDelivery))]
        raise AssertionError(f"delivered to {got}, expected {sorted(portals)}; rows: {rows}")


def logout_claims(provider: Provider, item: dict) -> dict:
    from joserfc import jwt

    return jwt.decode(item["form"]["logout_token"], provider.jwks(),
                      algorithms=["RS256"]).claims


def userinfo_status(provider: Provider, token: dict) -> int:
    return http_get(provider.base + "/userinfo",
                    headers={"Authorization": f"Bearer {token['access_token']}"}).status_code


def logged_in(browser) -> bool:  # noqa: ANN001
    response = browser.http.get(browser.base + "/account", allow_redirects=False)
    return response.status_code == 200
