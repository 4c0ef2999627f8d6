"""client_credentials: only for portals registered with it; no user, no ID token."""

from __future__ import annotations

from tests.oidc.conftest import Provider, http_get, http_post


def test_allowed_client_gets_a_token_without_id_token(provider: Provider) -> None:
    portal = provider.portal("Backend", grant_types=["client_credentials"], redirect_uri=None,
                             scope="openid")
    response = http_post(provider.base + "/token", data={"grant_type": "client_credentials"},
                             auth=(portal.client_id, portal.secret))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["access_token"] and "id_token" not in body and "refresh_token" not in body
    assert response.headers["Cache-Control"] == "no-store"
    userinfo = http_get(provider.base + "/userinfo",
                            headers={"Authorization": f"Bearer {body['access_token']}"})
    assert userinfo.status_code == 401
    user_scope = http_post(provider.base + "/token",
                               data={"grant_type": "client_credentials", "scope": "email"},
                               auth=(portal.client_id, portal.secret))
    assert user_scope.json()["error"] == "invalid_scope"


def test_other_clients_are_refused(provider: Provider) -> None:
    portal = provider.portal()
    response = http_post(provider.base + "/token", data={"grant_type": "client_credentials"},
                             auth=(portal.client_id, portal.secret))
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
