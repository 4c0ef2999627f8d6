"""Authorization request errors: HTML for an untrusted client or redirect URI (never a
redirect), everything else back to the client with error, state and iss (RFC 9207)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.oidc.conftest import Provider, http_get


def _url(provider: Provider, **params: str) -> str:
    return provider.base + "/authorize?" + urlencode(params)


def _base(portal, **extra: str) -> dict[str, str]:  # noqa: ANN001
    params = {"response_type": "code", "client_id": portal.client_id,
              "redirect_uri": portal.redirect_uri, "scope": "openid", "state": "st-1",
              "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
              "code_challenge_method": "S256"}
    params.update(extra)
    return params


def test_unknown_client_gets_html_and_no_redirect(provider: Provider) -> None:
    response = http_get(_url(provider, response_type="code", client_id="nobody",
                                 redirect_uri="https://evil.example/cb", scope="openid"),
                            allow_redirects=False, headers={"Accept-Language": "de"})
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")
    assert "evil.example" not in response.text
    assert "Anmeldeanfrage" in response.text  # German by default
    english = http_get(_url(provider, response_type="code", client_id="nobody",
                                redirect_uri="https://evil.example/cb", scope="openid"),
                           allow_redirects=False, headers={"Accept-Language": "en"})
    assert "sign-in request" in english.text


def test_unregistered_redirect_uri_gets_html_and_no_redirect(provider: Provider) -> None:
    portal = provider.portal()
    for uri in ("https://evil.example/cb", portal.redirect_uri + "/x",
                portal.redirect_uri + "?a=1"):
        response = http_get(_url(provider, **_base(portal, redirect_uri=uri)),
                                allow_redirects=False)
        assert response.status_code == 400 and "Location" not in response.headers
    missing = _base(portal)
    del missing["redirect_uri"]
    response = http_get(_url(provider, **missing), allow_redirects=False)
    assert response.status_code == 400 and "Location" not in response.headers


def test_suspended_client_gets_html(provider: Provider) -> None:
    from oidc.clients import require_client, set_status
    from servicekonto.db import db

    portal = provider.portal()
    with provider.app.app_context():
        set_status(db.session, require_client(db.session, portal.client_id), "suspended")
        db.session.commit()
    response = http_get(_url(provider, **_base(portal)), allow_redirects=False)
    assert response.status_code == 400 and "Location" not in response.headers


@pytest.mark.parametrize(("extra", "error"), [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "code id_token"}, "unsupported_response_type"),
    ({"scope": "openid wallet"}, "invalid_scope"),
    ({"scope": "profile"}, "invalid_scope"),
    ({"scope": "openid phone"}, "invalid_scope"),  # not registered for this portal
    ({"claims": "{not json"}, "invalid_request"),
    ({"claims": "[1]"}, "invalid_request"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"max_age": "soon"}, "invalid_request"),
    ({"request": "eyJ.x.y"}, "request_not_supported"),
    ({"request_uri": "https://x.example/r"}, "request_uri_not_supported"),
    ({"response_mode": "fragment"}, "invalid_request"),
    ({"prompt": "none"}, "login_required"),
    ({"claims": json.dumps({"id_token": {"acr": {"essential": True,
                                                 "values": ["http://eidas.europa.eu/LoA/high"]}}})},
     "unmet_authentication_requirements"),
])
def test_errors_go_back_to_the_client(provider: Provider, extra: dict, error: str) -> None:
    portal = provider.portal()
    response = http_get(_url(provider, **_base(portal, **extra)), allow_redirects=False)
    assert response.status_code == 302, response.text
    landing = provider.browser().go(_url(provider, **_base(portal, **extra)))
    assert landing.url.startswith(portal.redirect_uri)
    assert landing.params["error"] == error
    assert landing.params["state"] == "st-1"
    assert landing.params["iss"] == provider.issuer


def test_unknown_parameters_are_ignored_and_voluntary_acr_proceeds(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal()
    token, _rp, _ = provider.login_flow(
        portal, provider.browser(), email, foo="bar", display="popup",
        acr_values="http://eidas.europa.eu/LoA/substantial")
    assert provider.id_claims(token["id_token"])["acr"] == "http://eidas.europa.eu/LoA/low"


def test_essential_acr_that_is_reachable_is_fine(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal()
    claims = {"id_token": {"acr": {"essential": True, "values": [
        "http://eidas.europa.eu/LoA/substantial", "http://eidas.europa.eu/LoA/low"]}}}
    token, _rp, _ = provider.login_flow(portal, provider.browser(), email,
                                        claims=json.dumps(claims))
    assert provider.id_claims(token["id_token"])["acr"] == "http://eidas.europa.eu/LoA/low"


def test_post_to_the_authorization_endpoint(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal()
    browser = provider.browser()
    browser.login(email)
    rp = provider.rp(portal)
    url, state, verifier = provider.authorization_url(rp)
    query = url.split("?", 1)[1]
    from urllib.parse import parse_qsl
    landing = browser.go(provider.base + "/authorize", method="POST", data=dict(parse_qsl(query)))
    assert "code" in landing.params and landing.params["state"] == state
