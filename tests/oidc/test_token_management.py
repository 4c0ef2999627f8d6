"""Token revocation (RFC 7009) and introspection (RFC 7662) over real HTTP."""

from __future__ import annotations

import requests

from servicekonto.audit.tags import AuditTag


def _post(provider, path, portal, **data):  # noqa: ANN001, ANN201
    return requests.post(provider.base + path, data=data,
                         auth=(portal.client_id, portal.secret), timeout=10)


def _userinfo(provider, access_token):  # noqa: ANN001, ANN201
    return requests.get(provider.base + "/userinfo",
                        headers={"Authorization": f"Bearer {access_token}"}, timeout=10)


def _login(provider, **portal_kwargs):  # noqa: ANN001, ANN003, ANN201
    email = provider.citizen()
    portal = provider.portal(**portal_kwargs)
    token, rp, _ = provider.login_flow(portal, provider.browser(), email)
    return email, portal, token, rp


def test_discovery_advertises_both_endpoints(provider):
    doc = requests.get(provider.base + "/.well-known/openid-configuration", timeout=10).json()
    assert doc["revocation_endpoint"] == provider.base + "/oauth/revoke"
    assert doc["introspection_endpoint"] == provider.base + "/oauth/introspect"


def test_introspection_of_own_access_token(provider):
    _, portal, token, _ = _login(provider)
    response = _post(provider, "/oauth/introspect", portal, token=token["access_token"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    id_claims = provider.id_claims(token["id_token"])
    assert body["active"] is True
    assert body["client_id"] == portal.client_id
    assert body["aud"] == portal.client_id
    assert body["iss"] == provider.issuer
    assert body["sub"] == id_claims["sub"]  # the pairwise sub this portal knows
    assert body["token_type"] == "Bearer"
    assert set(body["scope"].split()) == set(portal.scope.split())
    assert body["exp"] > body["iat"]


def test_introspection_of_another_clients_token_is_inactive(provider):
    _, _, token, _ = _login(provider)
    other = provider.portal("Anderes Portal")
    response = _post(provider, "/oauth/introspect", other, token=token["access_token"])
    assert response.status_code == 200
    assert response.json() == {"active": False}


def test_introspection_of_unknown_token_is_inactive(provider):
    portal = provider.portal()
    response = _post(provider, "/oauth/introspect", portal, token="not-a-token")
    assert response.json() == {"active": False}


def test_unauthenticated_requests_are_refused(provider):
    _, portal, token, _ = _login(provider)
    for path in ("/oauth/introspect", "/oauth/revoke"):
        anonymous = requests.post(provider.base + path, data={"token": token["access_token"]},
                                  timeout=10)
        assert anonymous.status_code == 401, path
        assert anonymous.json()["error"] == "invalid_client"
        wrong = requests.post(provider.base + path, data={"token": token["access_token"]},
                              auth=(portal.client_id, "wrong-secret"), timeout=10)
        assert wrong.status_code == 401, path
    # nothing was revoked
    assert _userinfo(provider, token["access_token"]).status_code == 200


def test_revoking_an_access_token_stops_userinfo_at_once(provider):
    email, portal, token, _ = _login(provider)
    assert _userinfo(provider, token["access_token"]).status_code == 200
    response = _post(provider, "/oauth/revoke", portal, token=token["access_token"],
                     token_type_hint="access_token")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert _userinfo(provider, token["access_token"]).status_code == 401
    introspected = _post(provider, "/oauth/introspect", portal, token=token["access_token"])
    assert introspected.json() == {"active": False}
    events = provider.audit(str(AuditTag.OIDC_TOKEN_REVOKED))
    assert len(events) == 1
    assert events[0]["client_id"] == portal.client_id
    assert events[0]["user"] == provider.user_id(email)
    assert events[0]["details"]["token_type"] == "access_token"


def test_revoking_another_clients_token_is_refused(provider):
    _, _, token, _ = _login(provider)
    other = provider.portal("Fremdes Portal")
    response = _post(provider, "/oauth/revoke", other, token=token["access_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert _userinfo(provider, token["access_token"]).status_code == 200
    assert provider.audit(str(AuditTag.OIDC_TOKEN_REVOKED)) == []


def test_revoking_an_unknown_token_succeeds_quietly(provider):
    portal = provider.portal()
    response = _post(provider, "/oauth/revoke", portal, token="never-issued")
    assert response.status_code == 200


def test_revoking_a_refresh_token_revokes_its_family(provider):
    _, portal, first, rp = _login(provider, always_issue_refresh_token=True)
    assert first.get("refresh_token")
    second = rp.refresh_token(provider.base + "/token", refresh_token=first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert _userinfo(provider, second["access_token"]).status_code == 200

    response = _post(provider, "/oauth/revoke", portal, token=second["refresh_token"],
                     token_type_hint="refresh_token")
    assert response.status_code == 200
    for access in (first["access_token"], second["access_token"]):
        assert _userinfo(provider, access).status_code == 401
    refreshed = requests.post(provider.base + "/token", data={
        "grant_type": "refresh_token", "refresh_token": second["refresh_token"]},
        auth=(portal.client_id, portal.secret), timeout=10)
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    introspected = _post(provider, "/oauth/introspect", portal, token=second["refresh_token"],
                         token_type_hint="refresh_token")
    assert introspected.json() == {"active": False}
    events = provider.audit(str(AuditTag.OIDC_TOKEN_REVOKED))
    assert events[-1]["details"]["token_type"] == "refresh_token"
    assert events[-1]["details"]["rows_revoked"] >= 1


def test_introspection_of_an_active_refresh_token(provider):
    _, portal, token, _ = _login(provider, always_issue_refresh_token=True)
    body = _post(provider, "/oauth/introspect", portal, token=token["refresh_token"],
                 token_type_hint="refresh_token").json()
    assert body["active"] is True
    assert body["token_type"] == "refresh_token"
    assert body["client_id"] == portal.client_id


def test_a_public_client_revokes_with_client_id_but_cannot_introspect(provider):
    email = provider.citizen()
    portal = provider.portal("App", auth_method="none")
    token, _, _ = provider.login_flow(portal, provider.browser(), email)
    introspected = requests.post(provider.base + "/oauth/introspect", timeout=10, data={
        "token": token["access_token"], "client_id": portal.client_id})
    assert introspected.status_code in (400, 401)
    assert introspected.json()["error"] == "invalid_client"
    response = requests.post(provider.base + "/oauth/revoke", timeout=10, data={
        "token": token["access_token"], "client_id": portal.client_id})
    assert response.status_code == 200
    assert _userinfo(provider, token["access_token"]).status_code == 401
