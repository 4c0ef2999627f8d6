"""A portal that needs the trust level "substantial": login with password + passkey over real
HTTP (live server, Authlib relying party); the ID token says ``amr ["pwd", "hwk"]``."""

from __future__ import annotations

import json
from urllib.parse import urljoin

import pytest

from servicekonto.accounts.trust_levels import LOA_SUBSTANTIAL
from tests.oidc.conftest import PASSWORD, Provider
from tests.support.authenticator import SoftAuthenticator
from tests.support.forms import csrf_token, parse_forms
from tests.support.live_server import LiveServer

ESSENTIAL_SUBSTANTIAL = json.dumps({"id_token": {"acr": {"essential": True,
                                                         "values": [LOA_SUBSTANTIAL]}}})


@pytest.fixture
def provider(app, live_server: LiveServer) -> Provider:
    return Provider(app, live_server)


def _ceremony(browser, page_url: str, options_path: str, answer):  # noqa: ANN001, ANN202
    """What passkeys.js does, with ``requests``: options, authenticator, post the form."""
    page = browser.http.get(page_url)
    offered = browser.http.post(browser.base + options_path,
                                headers={"X-CSRFToken": csrf_token(page.text),
                                         "Accept": "application/json"})
    assert offered.status_code == 200, offered.text
    form = next(f for f in parse_forms(page.text) if "credential" in f["fields"])
    return browser.http.post(urljoin(page.url, form["action"]), allow_redirects=False,
                             data={**form["fields"],
                                   "credential": json.dumps(answer(offered.text))})


def test_portal_login_with_password_and_passkey(provider: Provider):
    email = provider.citizen()
    token = SoftAuthenticator(provider.issuer)
    console = provider.browser()
    assert console.login(email).status_code == 302
    page = console.http.get(console.base + "/account/passkeys/new")
    form = parse_forms(page.text)[0]
    confirmed = console.http.post(page.url, allow_redirects=False, data={
        **form["fields"], "name": "Laptop", "current_password": PASSWORD})
    assert confirmed.status_code == 303, confirmed.text
    added = _ceremony(console, console.base + "/account/passkeys/new/create",
                      "/account/passkeys/new/options", token.create)
    assert added.status_code == 200 and "Laptop" in added.text  # with recovery codes

    portal = provider.portal()
    rp = provider.rp(portal)
    url, _state, verifier = provider.authorization_url(rp, nonce="n-1",
                                                       claims=ESSENTIAL_SUBSTANTIAL)
    browser = provider.browser()
    landing = browser.go(url, email=email)
    assert "/login/second-factor" in landing.response.url
    assert 'data-passkey="login"' in landing.response.text
    done = _ceremony(browser, landing.response.url, "/login/passkey/options", token.get)
    assert done.status_code == 303, done.text
    landing = browser.go(urljoin(browser.base, done.headers["Location"]))
    tokens = rp.fetch_token(provider.base + "/token", code=landing.params["code"],
                            code_verifier=verifier)
    claims = provider.id_claims(tokens["id_token"])
    assert claims["acr"] == LOA_SUBSTANTIAL and claims["amr"] == ["pwd", "hwk"]
