"""Discovery (OIDC Discovery 1.0 and RFC 8414): complete, truthful, every endpoint answers."""

from __future__ import annotations

from tests.oidc.conftest import Provider, http_get, http_post


def test_discovery_document(provider: Provider) -> None:
    response = http_get(provider.base + "/.well-known/openid-configuration")
    assert response.status_code == 200
    assert "max-age" in response.headers["Cache-Control"] and response.headers["ETag"]
    doc = response.json()
    assert doc["issuer"] == provider.issuer
    assert doc["response_types_supported"] == ["code"]
    assert doc["response_modes_supported"] == ["query", "form_post"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["scopes_supported"]) == {"openid", "profile", "email", "address", "phone",
                                            "offline_access"}
    assert set(doc["subject_types_supported"]) == {"pairwise", "public"}
    assert doc["id_token_signing_alg_values_supported"] == ["RS256", "PS256", "ES256"]
    assert "none" not in doc["id_token_signing_alg_values_supported"]
    assert doc["claims_parameter_supported"] is True
    assert doc["request_parameter_supported"] is False
    assert doc["request_uri_parameter_supported"] is False
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["acr_values_supported"] == ["http://eidas.europa.eu/LoA/low",
                                         "http://eidas.europa.eu/LoA/substantial"]
    assert doc["ui_locales_supported"] == ["de", "en"]
    assert set(doc["prompt_values_supported"]) == {"none", "login", "consent", "select_account"}
    assert {"authorization_code", "refresh_token", "client_credentials"} == set(
        doc["grant_types_supported"])
    assert {"client_secret_basic", "client_secret_post", "private_key_jwt", "none"} <= set(
        doc["token_endpoint_auth_methods_supported"])
    assert doc["token_endpoint_auth_signing_alg_values_supported"]
    assert {"sub", "email", "given_name", "family_name", "birthdate", "address", "acr"} <= set(
        doc["claims_supported"])
    assert doc["backchannel_logout_supported"] is True
    assert doc["backchannel_logout_session_supported"] is True
    assert doc["frontchannel_logout_supported"] is False
    assert "none" in doc["revocation_endpoint_auth_methods_supported"]  # public clients too
    assert "none" not in doc["introspection_endpoint_auth_methods_supported"]

    same = http_get(provider.base + "/.well-known/oauth-authorization-server").json()
    assert same == doc


def test_every_advertised_endpoint_answers(provider: Provider) -> None:
    doc = http_get(provider.base + "/.well-known/openid-configuration").json()
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                 "end_session_endpoint", "revocation_endpoint", "introspection_endpoint"):
        url = doc[name]
        assert url.startswith(provider.issuer), name
        response = http_get(url, allow_redirects=False)
        assert response.status_code not in (404, 500), (name, response.status_code)
    keys = http_get(doc["jwks_uri"]).json()["keys"]
    assert {"RS256", "PS256", "ES256"} <= {k["alg"] for k in keys}
    token = http_post(doc["token_endpoint"], data={"grant_type": "password"})
    assert token.status_code in (400, 401)
    assert token.json()["error"] in ("unsupported_grant_type", "invalid_client")
