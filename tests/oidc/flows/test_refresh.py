"""Refresh tokens: issued with offline_access (or always_issue_refresh_token), rotated on every
use, a reused one revokes the family, a refresh may narrow the scope."""

from __future__ import annotations

import requests

from tests.oidc.conftest import Provider, http_get, http_post

SCOPE = "openid email offline_access"


def _refresh(provider: Provider, portal, token: str, **extra: str) -> requests.Response:  # noqa: ANN001
    return http_post(provider.base + "/token", data={
        "grant_type": "refresh_token", "refresh_token": token, **extra},
        auth=(portal.client_id, portal.secret))


def _userinfo(provider: Provider, access: str) -> requests.Response:
    return http_get(provider.base + "/userinfo",
                        headers={"Authorization": f"Bearer {access}"})


def test_rotation_and_reuse_revokes_family(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal(scope=SCOPE)
    token, _rp, _ = provider.login_flow(portal, provider.browser(), email, scope=SCOPE)
    first_refresh = token["refresh_token"]

    rotated = _refresh(provider, portal, first_refresh)
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["refresh_token"] != first_refresh
    assert body["access_token"] != token["access_token"]
    claims = provider.id_claims(body["id_token"])
    assert claims["sub"] == provider.id_claims(token["id_token"])["sub"]
    assert _userinfo(provider, body["access_token"]).status_code == 200
    assert _userinfo(provider, token["access_token"]).status_code == 401  # replaced
    assert provider.audit("oidc:token:refreshed")

    reused = _refresh(provider, portal, first_refresh)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert _userinfo(provider, body["access_token"]).status_code == 401
    assert _refresh(provider, portal, body["refresh_token"]).json()["error"] == "invalid_grant"
    assert provider.audit("oidc:refresh_token:reused")


def test_refresh_may_narrow_but_not_widen_scope(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal(scope=SCOPE + " profile")
    token, _rp, _ = provider.login_flow(portal, provider.browser(), email, scope=SCOPE)
    wider = _refresh(provider, portal, token["refresh_token"], scope="openid profile")
    assert wider.json()["error"] == "invalid_scope"
    narrow = _refresh(provider, portal, token["refresh_token"], scope="openid offline_access")
    assert narrow.status_code == 200 and narrow.json()["scope"] == "openid offline_access"
    info = _userinfo(provider, narrow.json()["access_token"]).json()
    assert "email" not in info and info["sub"]


def test_no_refresh_without_offline_access_unless_always(provider: Provider) -> None:
    email = provider.citizen()
    browser = provider.browser()
    plain = provider.portal(scope="openid email")
    token, _rp, _ = provider.login_flow(plain, browser, email)
    assert "refresh_token" not in token
    always = provider.portal("Always", scope="openid", always_issue_refresh_token=True)
    token, _rp, _ = provider.login_flow(always, browser, scope="openid")
    assert token["refresh_token"]


def test_refresh_bound_to_client(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal(scope=SCOPE)
    other = provider.portal("Other", scope=SCOPE)
    token, _rp, _ = provider.login_flow(portal, provider.browser(), email, scope=SCOPE)
    assert _refresh(provider, other, token["refresh_token"]).json()["error"] == "invalid_grant"
    assert _refresh(provider, portal, token["refresh_token"]).status_code == 200
