"""Client authentication: secrets (basic/post), none, and private_key_jwt (RFC 7523) with
inline jwks and jwks_uri (cache, refetch on unknown kid), replay, audience and expiry checks.

The tests run against a small token endpoint of their own (Authlib's AuthorizationServer with a
client_credentials grant), so they test exactly this module's wiring.
"""

from __future__ import annotations

import base64
import secrets
import time

import pytest
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from flask import Blueprint
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import oidc.client_auth as client_auth_module
from oidc.client_auth import (
    TOKEN_ENDPOINT_AUTH_METHODS,
    JWKSCache,
    register_client_auth,
)
from oidc.clients import create_client, get_client, set_status
from oidc.models import ClientStatus, UsedAssertion
from servicekonto.db import utcnow
from tests.oidc.json_server import JSONServer

TOKEN_PATH = "/test-client-auth/token"


class Grant(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_ENDPOINT_AUTH_METHODS


@pytest.fixture
def server(app):
    """A token endpoint at TOKEN_PATH (endpoint ``client_auth_test.token``)."""
    authz = AuthorizationServer(app, query_client=lambda cid: get_client(cid),
                                save_token=lambda token, request: None)
    authz.register_grant(Grant)
    register_client_auth(authz, token_endpoint="client_auth_test.token")
    bp = Blueprint("client_auth_test", __name__)

    @bp.post(TOKEN_PATH, endpoint="token")
    def token():
        return authz.create_token_response()

    app.extensions["csrf"].exempt(token)
    app.register_blueprint(bp)
    return authz


@pytest.fixture
def http(app, server):
    return app.test_client()


@pytest.fixture
def jwks_server():
    with JSONServer() as srv:
        yield srv


def issuer(app) -> str:
    return app.config["SERVICEKONTO"]["issuer"]


def register(app, **kwargs):
    with app.app_context():
        from servicekonto.db import db

        kwargs.setdefault("name", f"portal-{secrets.token_hex(4)}")
        kwargs.setdefault("redirect_uris", [])
        kwargs.setdefault("grant_types", ["client_credentials"])
        client, secret = create_client(db.session, **kwargs)
        db.session.commit()
        return client.client_id, secret


def new_key(kind: str = "EC", kid: str | None = None):
    kid = kid or secrets.token_hex(6)
    if kind == "RSA":
        return RSAKey.generate_key(2048, parameters={"kid": kid})
    return ECKey.generate_key("P-256", parameters={"kid": kid})


def public_set(*keys) -> dict:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def assertion(key, client_id: str, aud: str, *, alg: str | None = None, **overrides) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60,
              "jti": secrets.token_urlsafe(16)}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    alg = alg or ("ES256" if key.key_type == "EC" else "RS256")
    return jwt.encode({"alg": alg, "kid": key.kid}, claims, key, [alg])


def post_assertion(http, client_assertion: str):
    return http.post(TOKEN_PATH, data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": client_assertion})


def token_url(app) -> str:
    return issuer(app) + TOKEN_PATH


# -- private_key_jwt with registered jwks -----------------------------------------------------

def test_valid_assertion_is_accepted(app, http):
    key = new_key()
    client_id, secret = register(app, auth_method="private_key_jwt", jwks=public_set(key))
    assert secret is None
    response = post_assertion(http, assertion(key, client_id, token_url(app)))
    assert response.status_code == 200, response.json
    assert response.json["access_token"]


def test_rsa_and_issuer_audience_are_accepted(app, http):
    key = new_key("RSA")
    client_id, _ = register(app, auth_method="private_key_jwt", jwks=public_set(key))
    response = post_assertion(http, assertion(key, client_id, issuer(app), alg="PS256"))
    assert response.status_code == 200, response.json
    response = post_assertion(http, assertion(key, client_id, [token_url(app), "x"]))
    assert response.status_code == 200, response.json


def test_replayed_jti_is_rejected(app, http):
    key = new_key()
    client_id, _ = register(app, auth_method="private_key_jwt", jwks=public_set(key))
    signed = assertion(key, client_id, token_url(app))
    assert post_assertion(http, signed).status_code == 200
    again = post_assertion(http, signed)
    assert again.status_code in (400, 401)
    assert again.json["error"] == "invalid_client"
    # the same jti in a new assertion is a replay too
    jti = "fixed-" + secrets.token_hex(4)
    assert post_assertion(http, assertion(key, client_id, token_url(app), jti=jti)
                          ).status_code == 200
    assert post_assertion(http, assertion(key, client_id, token_url(app), jti=jti)
                          ).json["error"] == "invalid_client"


@pytest.mark.parametrize("change", [
    {"aud": "https://other.example/token"},
    {"aud": None},
    {"exp": int(time.time()) - 300},
    {"exp": None},
    {"exp": int(time.time()) + 7 * 86400},
    {"jti": None},
    {"iss": "someone-else"},
    {"nbf": int(time.time()) + 600},
])
def test_bad_claims_are_rejected(app, http, change):
    key = new_key()
    client_id, _ = register(app, auth_method="private_key_jwt", jwks=public_set(key))
    overrides = dict(change)
    if overrides.get("exp", 0) and overrides["exp"] < time.time():
        overrides["iat"] = overrides["exp"] - 60
    aud = overrides.pop("aud", token_url(app))
    response = post_assertion(http, assertion(key, client_id, aud, **overrides))
    assert response.status_code in (400, 401), response.json
    assert response.json["error"] == "invalid_client"


def test_wrong_key_and_unsigned_assertions_are_rejected(app, http):
    key = new_key()
    client_id, _ = register(app, auth_method="private_key_jwt", jwks=public_set(key))
    impostor = new_key(kid=key.kid)
    assert post_assertion(http, assertion(impostor, client_id, token_url(app))
                          ).json["error"] == "invalid_client"
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(
        f'{{"iss":"{client_id}","sub":"{client_id}","aud":"{token_url(app)}",'
        f'"exp":{int(time.time()) + 60},"jti":"x1"}}'.encode()).rstrip(b"=").decode()
    assert post_assertion(http, f"{header}.{body}.").json["error"] == "invalid_client"


def test_assertion_from_a_secret_client_is_rejected(app, http):
    key = new_key()
    client_id, _ = register(app, auth_method="client_secret_basic")
    response = post_assertion(http, assertion(key, client_id, token_url(app)))
    assert response.json["error"] == "invalid_client"


def test_suspended_client_cannot_authenticate(app, http):
    key = new_key()
    client_id, _ = register(app, auth_method="private_key_jwt", jwks=public_set(key))
    with app.app_context():
        from servicekonto.db import db

        set_status(db.session, get_client(client_id), ClientStatus.SUSPENDED)
        db.session.commit()
    response = post_assertion(http, assertion(key, client_id, token_url(app)))
    assert response.json["error"] == "invalid_client"


# -- private_key_jwt with jwks_uri ------------------------------------------------------------

def test_jwks_uri_is_cached_and_refetched_once_on_unknown_kid(app, http, jwks_server):
    first, second, unknown = new_key(), new_key("RSA"), new_key()
    jwks_server.documents["/jwks"] = public_set(first)
    client_id, _ = register(app, auth_method="private_key_jwt",
                            jwks_uri=jwks_server.url("/jwks"))

    for _ in range(3):
        response = post_assertion(http, assertion(first, client_id, token_url(app)))
        assert response.status_code == 200, response.json
    assert jwks_server.hits["/jwks"] == 1  # cached

    jwks_server.documents["/jwks"] = public_set(first, second)  # the portal rotated
    response = post_assertion(http, assertion(second, client_id, token_url(app)))
    assert response.status_code == 200, response.json
    assert jwks_server.hits["/jwks"] == 2  # exactly one refetch

    response = post_assertion(http, assertion(unknown, client_id, token_url(app)))
    assert response.json["error"] == "invalid_client"
    response = post_assertion(http, assertion(unknown, client_id, token_url(app)))
    assert response.json["error"] == "invalid_client"
    assert jwks_server.hits["/jwks"] == 2  # unknown kids do not make us hammer the portal


def test_unknown_kid_refetch_after_the_interval(app, http, jwks_server, monkeypatch):
    first, unknown = new_key(), new_key()
    jwks_server.documents["/jwks"] = public_set(first)
    client_id, _ = register(app, auth_method="private_key_jwt",
                            jwks_uri=jwks_server.url("/jwks"))
    monkeypatch.setattr(client_auth_module, "FORCED_REFETCH_INTERVAL", 0)
    for _ in range(2):
        post_assertion(http, assertion(unknown, client_id, token_url(app)))
    assert jwks_server.hits["/jwks"] == 3  # first fetch + one refetch per unknown kid


def test_unreachable_jwks_uri_is_invalid_client(app, http, jwks_server):
    key = new_key()
    jwks_server.status["/missing"] = 500
    client_id, _ = register(app, auth_method="private_key_jwt",
                            jwks_uri=jwks_server.url("/missing"))
    response = post_assertion(http, assertion(key, client_id, token_url(app)))
    assert response.json["error"] == "invalid_client"


def test_jwks_cache_expires_and_keeps_the_last_good_keys():
    clock = [0.0]
    fetched = []
    key = new_key()

    def fetch(uri, allow_loopback_http):
        fetched.append(uri)
        if len(fetched) == 3:
            raise client_auth_module.JWKSFetchError("down")
        return public_set(key)

    cache = JWKSCache(300, fetch=fetch, clock=lambda: clock[0])
    client = type("C", (), {"jwks": None, "jwks_uri": "https://p.example/jwks",
                            "client_id": "c"})()
    assert cache.keys_for(client).keys[0].kid == key.kid
    clock[0] = 299
    cache.keys_for(client)
    assert len(fetched) == 1
    clock[0] = 301
    cache.keys_for(client)
    assert len(fetched) == 2
    clock[0] = 700
    assert cache.keys_for(client).keys[0].kid == key.kid  # fetch failed: last good keys
    assert len(fetched) == 3


def test_used_assertions_are_purged_after_expiry(app, http):
    key = new_key()
    client_id, _ = register(app, auth_method="private_key_jwt", jwks=public_set(key))
    engine = app.extensions["servicekonto.db"].engine
    with Session(engine) as session:
        import datetime as dt

        session.add(UsedAssertion(jti_hash="0" * 64,
                                  expires_at=utcnow() - dt.timedelta(minutes=5)))
        session.commit()
    response = post_assertion(http, assertion(key, client_id, token_url(app)))
    assert response.status_code == 200
    with Session(engine) as session:
        hashes = session.scalars(select(UsedAssertion.jti_hash)).all()
        assert "0" * 64 not in hashes and len(hashes) == 1


# -- secrets and none -------------------------------------------------------------------------

def test_client_secret_basic(app, http):
    client_id, secret = register(app)
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    ok = http.post(TOKEN_PATH, data={"grant_type": "client_credentials"},
                   headers={"Authorization": f"Basic {basic}"})
    assert ok.status_code == 200, ok.json
    wrong = base64.b64encode(f"{client_id}:nope".encode()).decode()
    bad = http.post(TOKEN_PATH, data={"grant_type": "client_credentials"},
                    headers={"Authorization": f"Basic {wrong}"})
    assert bad.status_code == 401
    assert bad.json["error"] == "invalid_client"
    assert bad.headers["WWW-Authenticate"].startswith("Basic")
    # a basic client may not switch to POST credentials
    post = http.post(TOKEN_PATH, data={"grant_type": "client_credentials",
                                       "client_id": client_id, "client_secret": secret})
    assert post.json["error"] == "invalid_client"


def test_client_secret_post(app, http):
    client_id, secret = register(app, auth_method="client_secret_post")
    ok = http.post(TOKEN_PATH, data={"grant_type": "client_credentials",
                                     "client_id": client_id, "client_secret": secret})
    assert ok.status_code == 200, ok.json
    bad = http.post(TOKEN_PATH, data={"grant_type": "client_credentials",
                                      "client_id": client_id, "client_secret": secret + "x"})
    assert bad.json["error"] == "invalid_client"


def test_none_authenticates_public_clients_only(app, server):
    public_id, _ = register(app, auth_method="none", grant_types=["authorization_code"],
                            redirect_uris=["https://a.example/cb"])
    secret_id, _ = register(app)
    for client_id, ok in ((public_id, True), (secret_id, False)):
        with app.test_request_context("/x", method="POST", data={"client_id": client_id}):
            request = server.create_oauth2_request(None)
            if ok:
                client = server.authenticate_client(request, TOKEN_ENDPOINT_AUTH_METHODS)
                assert client.client_id == public_id and request.auth_method == "none"
            else:
                with pytest.raises(InvalidClientError):
                    server.authenticate_client(request, TOKEN_ENDPOINT_AUTH_METHODS)


def test_jti_table_rows_are_hashed(app, http):
    key = new_key()
    client_id, _ = register(app, auth_method="private_key_jwt", jwks=public_set(key))
    jti = "visible-" + secrets.token_hex(4)
    post_assertion(http, assertion(key, client_id, token_url(app), jti=jti))
    with Session(app.extensions["servicekonto.db"].engine) as session:
        assert session.scalar(select(func.count()).select_from(UsedAssertion)) == 1
        assert jti not in session.scalar(select(UsedAssertion.jti_hash))


def test_the_providers_token_endpoint_accepts_private_key_jwt(app):
    """The same method wired into the real server by init_oidc (aud = {issuer}/token)."""
    if "oidc.token" not in app.view_functions:
        pytest.skip("the provider's token endpoint is not registered")
    key = new_key()
    client_id, _ = register(app, auth_method="private_key_jwt", jwks=public_set(key))
    http = app.test_client()
    signed = assertion(key, client_id, issuer(app) + "/token")
    response = http.post("/token", data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": signed})
    assert response.status_code == 200, response.json
    replay = http.post("/token", data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": signed})
    assert replay.json["error"] == "invalid_client"
