"""Codes: single use (a replay fails and revokes what the code produced), short-lived, bound to
the client and redirect URI."""

from __future__ import annotations

import datetime as dt

import requests
from sqlalchemy import update

from tests.oidc.conftest import Provider, http_get, http_post


def _code(provider: Provider, portal, email):  # noqa: ANN001, ANN202
    rp = provider.rp(portal)
    url, _state, verifier = provider.authorization_url(rp)
    landing = provider.browser().go(url, email=email)
    return landing.params["code"], verifier


def _redeem(provider: Provider, portal, code: str, verifier: str) -> requests.Response:  # noqa: ANN001
    return http_post(provider.base + "/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": portal.redirect_uri,
        "code_verifier": verifier}, auth=(portal.client_id, portal.secret))


def test_second_use_fails_and_revokes_tokens(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal(scope="openid email offline_access")
    rp = provider.rp(portal, scope="openid email offline_access")
    url, _state, verifier = provider.authorization_url(rp)
    code = provider.browser().go(url, email=email).params["code"]
    first = _redeem(provider, portal, code, verifier)
    assert first.status_code == 200
    access = first.json()["access_token"]
    ok = http_get(provider.base + "/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert ok.status_code == 200

    second = _redeem(provider, portal, code, verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    revoked = http_get(provider.base + "/userinfo",
                           headers={"Authorization": f"Bearer {access}"})
    assert revoked.status_code == 401
    assert 'error="invalid_token"' in revoked.headers["WWW-Authenticate"]
    refresh = http_post(provider.base + "/token", data={
        "grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]},
        auth=(portal.client_id, portal.secret))
    assert refresh.json()["error"] == "invalid_grant"
    assert provider.audit("oidc:code:replayed")


def test_expired_code(provider: Provider) -> None:
    from oidc.models import AuthorizationCode
    from servicekonto.db import db

    email = provider.citizen()
    portal = provider.portal()
    code, verifier = _code(provider, portal, email)
    with provider.app.app_context():
        db.session.execute(update(AuthorizationCode).values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
        db.session.commit()
    response = _redeem(provider, portal, code, verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_code_bound_to_client_and_redirect_uri(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal()
    other = provider.portal("Other")
    code, verifier = _code(provider, portal, email)
    stolen = http_post(provider.base + "/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": portal.redirect_uri,
        "code_verifier": verifier}, auth=(other.client_id, other.secret))
    assert stolen.json()["error"] == "invalid_grant"
    wrong_uri = http_post(provider.base + "/token", data={
        "grant_type": "authorization_code", "code": code,
        "redirect_uri": portal.redirect_uri + "x", "code_verifier": verifier},
        auth=(portal.client_id, portal.secret))
    assert wrong_uri.json()["error"] == "invalid_grant"
    assert _redeem(provider, portal, code, verifier).status_code == 200
