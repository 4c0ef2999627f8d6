"""PKCE: S256 only, required for public clients, verifier checked at the token endpoint."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

from oidc.pkce import s256
from tests.oidc.conftest import Provider, http_post


def _authorize(provider: Provider, portal, email: str, **params: str):  # noqa: ANN001, ANN202
    query = {"response_type": "code", "client_id": portal.client_id,
             "redirect_uri": portal.redirect_uri, "scope": "openid", "state": "s", **params}
    return provider.browser().go(provider.base + "/authorize?" + urlencode(query), email=email)


def test_public_client_without_pkce_is_refused(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal(auth_method="none")
    landing = _authorize(provider, portal, email)
    assert landing.params["error"] == "invalid_request"
    assert "PKCE" in landing.params["error_description"]


def test_plain_is_refused(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal(auth_method="none")
    verifier = secrets.token_urlsafe(48)
    for params in ({"code_challenge": verifier, "code_challenge_method": "plain"},
                   {"code_challenge": s256(verifier)}):  # no method: plain by default
        landing = _authorize(provider, portal, email, **params)
        assert landing.params["error"] == "invalid_request"


def test_public_client_with_s256(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal(auth_method="none")
    token, rp, _ = provider.login_flow(portal, provider.browser(), email)
    assert token["access_token"] and provider.id_claims(token["id_token"])


def test_wrong_or_missing_verifier_is_invalid_grant(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal()
    browser = provider.browser()
    verifier = secrets.token_urlsafe(48)
    landing = _authorize(provider, portal, email, code_challenge=s256(verifier),
                         code_challenge_method="S256")
    data = {"grant_type": "authorization_code", "code": landing.params["code"],
            "redirect_uri": portal.redirect_uri}
    missing = http_post(provider.base + "/token", data=data,
                            auth=(portal.client_id, portal.secret))
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_grant"
    wrong = http_post(provider.base + "/token",
                          data={**data, "code_verifier": secrets.token_urlsafe(48)},
                          auth=(portal.client_id, portal.secret))
    assert wrong.json()["error"] == "invalid_grant"
    assert browser  # the code was never redeemed: the right verifier still works
    right = http_post(provider.base + "/token", data={**data, "code_verifier": verifier},
                          auth=(portal.client_id, portal.secret))
    assert right.status_code == 200


def test_confidential_client_may_omit_pkce(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal()
    landing = _authorize(provider, portal, email)
    response = http_post(provider.base + "/token", data={
        "grant_type": "authorization_code", "code": landing.params["code"],
        "redirect_uri": portal.redirect_uri}, auth=(portal.client_id, portal.secret))
    assert response.status_code == 200
