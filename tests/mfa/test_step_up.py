"""Step-up from a portal: acr_values (voluntary) and an essential acr above the session's level,
over real HTTP against the live server with an Authlib relying party."""

from __future__ import annotations

import json
import time
from urllib.parse import urljoin

import pytest
import requests

from servicekonto.accounts.trust_levels import LOA_HIGH, LOA_LOW, LOA_SUBSTANTIAL
from servicekonto.audit import AuditTag
from tests.mfa.conftest import code_at, enrol_direct
from tests.oidc.conftest import Provider
from tests.support.forms import parse_forms
from tests.support.live_server import LiveServer

ESSENTIAL_SUBSTANTIAL = json.dumps({"id_token": {"acr": {"essential": True,
                                                         "values": [LOA_SUBSTANTIAL]}}})


@pytest.fixture
def provider(app, live_server: LiveServer) -> Provider:
    return Provider(app, live_server)


def _low_session_with_factor(provider: Provider):  # noqa: ANN202
    """A browser signed in with the password only, whose citizen then set up an app."""
    email = provider.citizen()
    browser = provider.browser()
    assert browser.login(email).status_code == 302
    secret = enrol_direct(provider.app, provider.user_id(email))
    return email, browser, secret


def _enter_code(provider: Provider, browser, landing, code: str):  # noqa: ANN001, ANN202
    """On the second-factor page: submit the TOTP form, follow on to the portal."""
    page = landing.response
    assert page.status_code == 200 and "/login/second-factor" in page.url, page.url
    form = next(f for f in parse_forms(page.text) if "code" in f["fields"])
    response = browser.http.post(urljoin(page.url, form["action"]),
                                 data={**form["fields"], "code": code}, allow_redirects=False)
    assert response.status_code == 302, response.text
    return browser.go(urljoin(page.url, response.headers["Location"]))


def _token(provider: Provider, rp, landing, verifier):  # noqa: ANN001, ANN202
    assert "code" in landing.params, landing.params
    return rp.fetch_token(provider.base + "/token", code=landing.params["code"],
                          code_verifier=verifier)


@pytest.mark.parametrize("ask", ["acr_values", "essential"])
def test_step_up_raises_the_level_of_the_same_session(provider: Provider, ask: str):
    email, browser, secret = _low_session_with_factor(provider)
    portal = provider.portal()
    # an SSO at the basic level first: the portal gets acr low and the session's sid
    first, _rp, _ = provider.login_flow(portal, browser)
    first_claims = provider.id_claims(first["id_token"])
    assert first_claims["acr"] == LOA_LOW and first_claims["amr"] == ["pwd"]
    cookie_before = browser.http.cookies.get("sk_session")

    rp = provider.rp(portal)
    params = ({"acr_values": LOA_SUBSTANTIAL} if ask == "acr_values"
              else {"claims": ESSENTIAL_SUBSTANTIAL})
    url, _state, verifier = provider.authorization_url(rp, nonce="n-2", **params)
    started = int(time.time())
    landing = browser.go(url)
    assert "Bestätigen Sie, dass Sie es sind" in landing.response.text
    landing = _enter_code(provider, browser, landing, code_at(secret, 1))
    claims = provider.id_claims(_token(provider, rp, landing, verifier)["id_token"])
    assert claims["acr"] == LOA_SUBSTANTIAL
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["auth_time"] >= started > first_claims["auth_time"] - 1
    assert claims["sid"] == first_claims["sid"]  # the same login: back-channel logout works
    assert browser.http.cookies.get("sk_session") != cookie_before  # rotated (fixation)
    steps = provider.audit(str(AuditTag.ACCOUNT_STEP_UP))
    assert steps and steps[-1]["details"]["acr"] == LOA_SUBSTANTIAL
    # the next request at the portal needs no second factor any more
    again, _rp, _ = provider.login_flow(portal, browser, claims=ESSENTIAL_SUBSTANTIAL)
    assert provider.id_claims(again["id_token"])["acr"] == LOA_SUBSTANTIAL


def test_login_from_a_portal_asks_for_the_factor_and_reaches_substantial(provider: Provider):
    email = provider.citizen()
    secret = enrol_direct(provider.app, provider.user_id(email))
    portal = provider.portal()
    browser = provider.browser()
    rp = provider.rp(portal)
    url, _state, verifier = provider.authorization_url(rp, nonce="n-1",
                                                       claims=ESSENTIAL_SUBSTANTIAL)
    landing = browser.go(url, email=email)
    assert "Zweiter Schritt Ihrer Anmeldung" in landing.response.text
    landing = _enter_code(provider, browser, landing, code_at(secret, 1))
    token = _token(provider, rp, landing, verifier)
    claims = provider.id_claims(token["id_token"])
    assert claims["acr"] == LOA_SUBSTANTIAL and claims["amr"] == ["pwd", "otp"]
    # introspection and userinfo tell the same level
    body = requests.post(provider.base + "/oauth/introspect",
                         data={"token": token["access_token"]},
                         auth=(portal.client_id, portal.secret), timeout=10).json()
    assert body["acr"] == LOA_SUBSTANTIAL and body["auth_time"] == claims["auth_time"]
    info = requests.get(provider.base + "/userinfo", timeout=10,
                        headers={"Authorization": f"Bearer {token['access_token']}"})
    assert info.status_code == 200
    released = provider.audit(str(AuditTag.OIDC_CLAIMS_RELEASED))
    assert released[-1]["details"]["acr"] == LOA_SUBSTANTIAL


def test_essential_level_without_a_factor_is_unmet(provider: Provider):
    email = provider.citizen()
    portal = provider.portal()
    rp = provider.rp(portal)
    url, state, _verifier = provider.authorization_url(rp, claims=ESSENTIAL_SUBSTANTIAL)
    landing = provider.browser().go(url, email=email)
    assert landing.params["error"] == "unmet_authentication_requirements"
    assert landing.params["state"] == state and landing.params["iss"] == provider.issuer


def test_voluntary_level_without_a_factor_continues_at_basic(provider: Provider):
    email = provider.citizen()
    portal = provider.portal()
    token, _rp, _ = provider.login_flow(portal, provider.browser(), email,
                                        acr_values=f"{LOA_SUBSTANTIAL} {LOA_HIGH}")
    assert provider.id_claims(token["id_token"])["acr"] == LOA_LOW


def test_high_is_never_reachable(provider: Provider):
    email, browser, _secret = _low_session_with_factor(provider)
    portal = provider.portal()
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": [LOA_HIGH]}}})
    rp = provider.rp(portal)
    url, _state, _verifier = provider.authorization_url(rp, claims=claims)
    assert browser.go(url).params["error"] == "unmet_authentication_requirements"
    # a voluntary "high" is ignored: no step-up, the basic level answers
    token, _rp, _ = provider.login_flow(portal, browser, acr_values=LOA_HIGH)
    assert provider.id_claims(token["id_token"])["acr"] == LOA_LOW


def test_prompt_none_with_a_needed_step_up(provider: Provider):
    _email, browser, _secret = _low_session_with_factor(provider)
    portal = provider.portal()
    provider.login_flow(portal, browser)  # consent given
    rp = provider.rp(portal)
    url, _state, _verifier = provider.authorization_url(rp, prompt="none",
                                                        claims=ESSENTIAL_SUBSTANTIAL)
    assert browser.go(url).params["error"] == "interaction_required"
    # voluntary: no interaction possible, so the basic level answers
    token, _rp, _ = provider.login_flow(portal, browser, prompt="none",
                                        acr_values=LOA_SUBSTANTIAL)
    assert provider.id_claims(token["id_token"])["acr"] == LOA_LOW


def test_discovery_advertises_substantial_but_not_high(provider: Provider):
    doc = requests.get(provider.base + "/.well-known/openid-configuration", timeout=10).json()
    assert doc["acr_values_supported"] == [LOA_LOW, LOA_SUBSTANTIAL]
