"""The thin path of the protocol endpoints (servicekonto/web.py, ``is_protocol_request``).

Portals call token, userinfo, introspection, revocation, discovery and JWKS machine to machine:
such a request must never read, touch, create or delete a browser session, nor set a cookie,
even when it carries a valid session cookie. The per-request plumbing they do need (request
id, security headers, metrics, Cache-Control) still runs; browser pages keep the full path.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from servicekonto.metrics import REQUEST_LATENCY
from servicekonto.web import PROTOCOL_ENDPOINTS
from tests.oidc.conftest import Provider, provider  # noqa: F401

COOKIE = "sk_session"


class StoreSpy:
    """Wraps the session store and records every method called on it."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def recorded(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls.append(name)
            return attribute(*args, **kwargs)

        return recorded


@pytest.fixture
def signed_in(provider: Provider) -> dict[str, Any]:  # noqa: F811
    email = provider.citizen()
    portal = provider.portal(scope="openid profile email offline_access",
                             grant_types=["authorization_code", "refresh_token"])
    browser = provider.browser()
    token, _rp, _landing = provider.login_flow(portal, browser, email,
                                               scope="openid profile email offline_access")
    cookie = browser.http.cookies.get(COOKIE)
    assert cookie
    return {"portal": portal, "browser": browser, "token": token, "cookie": cookie}


@pytest.fixture
def spy(provider: Provider):  # noqa: F811
    interface = provider.app.session_interface
    original = interface.store
    interface.store = StoreSpy(original)
    yield interface.store
    interface.store = original


def _protocol_calls(provider: Provider, signed_in: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    """One request to every protocol endpoint, each with the citizen's session cookie."""
    http = signed_in["browser"].http  # sends the session cookie with every request
    portal, token, base = signed_in["portal"], signed_in["token"], provider.base
    auth = (portal.client_id, portal.secret)
    return {
        "discovery": http.get(base + "/.well-known/openid-configuration", timeout=30),
        "discovery_rfc8414": http.get(base + "/.well-known/oauth-authorization-server",
                                      timeout=30),
        "jwks": http.get(base + "/jwks.json", timeout=30),
        "userinfo_get": http.get(base + "/userinfo", timeout=30,
                                 headers={"Authorization": f"Bearer {token['access_token']}"}),
        "userinfo_post": http.post(base + "/userinfo", timeout=30, headers={
            "Authorization": f"Bearer {token['access_token']}"}),
        "introspection": http.post(base + "/oauth/introspect", auth=auth, timeout=30,
                                   data={"token": token["access_token"]}),
        "refresh": http.post(base + "/token", auth=auth, timeout=30, data={
            "grant_type": "refresh_token", "refresh_token": token["refresh_token"]}),
        "token_error": http.post(base + "/token", auth=auth, timeout=30,
                                 data={"grant_type": "authorization_code", "code": "nope"}),
        "revocation": http.post(base + "/oauth/revoke", auth=auth, timeout=30,
                                data={"token": token["access_token"]}),
        "userinfo_revoked": http.get(base + "/userinfo", timeout=30, headers={
            "Authorization": f"Bearer {token['access_token']}"}),
    }


def test_protocol_requests_never_touch_the_session(provider, signed_in, spy):  # noqa: F811
    responses = _protocol_calls(provider, signed_in)

    expected = {"discovery": 200, "discovery_rfc8414": 200, "jwks": 200, "userinfo_get": 200,
                "userinfo_post": 200, "introspection": 200, "refresh": 200, "token_error": 400,
                "revocation": 200, "userinfo_revoked": 401}
    assert {name: r.status_code for name, r in responses.items()} == expected
    assert responses["introspection"].json()["active"] is True
    for name, response in responses.items():
        assert "Set-Cookie" not in response.headers, name
        assert "Cookie" not in response.headers.get("Vary", ""), name
    assert spy.calls == []  # no load, touch, save or delete

    # The browser's session is still there and still signed in; pages use the store as before.
    page = signed_in["browser"].http.get(provider.base + "/", timeout=30)
    assert page.status_code == 200
    assert signed_in["browser"].http.cookies.get(COOKIE) == signed_in["cookie"]
    assert "load" in spy.calls  # the spy sees the browser's requests (the test can fail)


def test_protocol_requests_keep_their_headers_and_metrics(provider, signed_in):  # noqa: F811
    def observed(endpoint: str) -> float:
        return sum(sample.value for metric in REQUEST_LATENCY.collect()
                   for sample in metric.samples
                   if sample.name.endswith("_count") and sample.labels["endpoint"] == endpoint)

    before = {e: observed(e) for e in ("oidc.userinfo", "oidc.token",
                                       "oidc_discovery.configuration")}
    responses = _protocol_calls(provider, signed_in)
    for name, response in responses.items():
        assert response.headers["X-Content-Type-Options"] == "nosniff", name
        assert response.headers["Referrer-Policy"] == "no-referrer", name
        assert response.headers["X-Request-ID"], name
    for name in ("userinfo_get", "refresh", "token_error", "introspection"):
        assert "no-store" in responses[name].headers["Cache-Control"], name
    assert responses["discovery"].headers["Cache-Control"].startswith("public")
    echoed = signed_in["browser"].http.get(provider.base + "/jwks.json", timeout=30,
                                           headers={"X-Request-ID": "portal-42"})
    assert echoed.headers["X-Request-ID"] == "portal-42"
    assert observed("oidc.userinfo") == before["oidc.userinfo"] + 3
    assert observed("oidc.token") == before["oidc.token"] + 2
    assert observed("oidc_discovery.configuration") == \
        before["oidc_discovery.configuration"] + 2


def test_protocol_routes_are_exactly_the_protocol_endpoints(app):
    routes = app.extensions["servicekonto.protocol_routes"]
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules() if rule.rule in routes}
    assert endpoints == PROTOCOL_ENDPOINTS
    assert "/authorize" not in routes and "/end-session" not in routes
    assert routes["/token"] >= {"POST"} and "GET" not in routes["/token"]


def test_skipping_csrf_changes_nothing(app):
    """The CSRF hook is skipped on the thin path: every protocol view that accepts a CSRF-checked
    method is exempt anyway (a new protocol endpoint must be exempted first)."""
    csrf = app.extensions["csrf"]
    checked = app.config["WTF_CSRF_METHODS"]
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PROTOCOL_ENDPOINTS and set(rule.methods or ()) & checked:
            view = app.view_functions[rule.endpoint]
            assert f"{view.__module__}.{view.__name__}" in csrf._exempt_views, rule.endpoint


def test_browser_only_hooks_are_the_intended_ones(app):
    def names(funcs: list[Any]) -> dict[str, bool]:
        return {getattr(f, "__name__", repr(f)): getattr(f, "browser_only", False)
                for f in funcs}

    before = names(app.before_request_funcs[None])
    after = names(app.after_request_funcs[None])
    assert before["csrf_protect"] is True
    assert before["_request_id"] is False and before["_start_timer"] is False
    assert after["_update_remember_cookie"] is True
    assert after["_commit_orphaned_deliveries"] is True
    assert after["_headers"] is False and after["_observe"] is False


@pytest.mark.parametrize(("method", "path", "protocol"), [
    ("POST", "/token", True),
    ("GET", "/token", False),  # no rule takes it: the normal 405 error page
    ("GET", "/userinfo", True),
    ("POST", "/userinfo", True),
    ("HEAD", "/jwks.json", True),
    ("GET", "/.well-known/openid-configuration", True),
    ("POST", "/.well-known/openid-configuration", False),
    ("GET", "/authorize", False),
    ("GET", "/end-session", False),
    ("POST", "/login", False),
    ("GET", "/token/", False),
    ("GET", "/", False),
])
def test_which_requests_are_protocol_requests(app, method, path, protocol):
    from servicekonto.web import is_protocol_request

    with app.test_request_context(path, method=method):
        assert is_protocol_request() is protocol
    assert is_protocol_request() is False  # outside a request


def test_csrf_still_applies_to_browser_forms(client):
    response = client.post("/login", data={"email": "a@example.org", "password": "x"})
    assert response.status_code == 400
