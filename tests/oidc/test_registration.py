"""RFC 7591 registration and RFC 7592 management over HTTP against the live server: response
shapes, initial and registration access tokens, validation errors (nothing half-registered),
pending clients, and allowed_claims enforced by the consent page, ID token and userinfo."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from oidc.models import Client, ClientStatus, Token
from servicekonto.audit.models import AuditEvent
from servicekonto.db import utcnow
from servicekonto.portals.models import InitialAccessToken
from tests.oidc.conftest import PASSWORD, Portal, Provider, http_get
from tests.oidc.json_server import JSONServer

TIMEOUT = 30
PUBLIC_JWK = {"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
              "x": "4sSEKapWTSoyg1UjEO2rdkcFcS1WzcATEFRNlGkLT5Q",
              "y": "gpxLrfCcM9v77Hx7fUcMjUQzcnSiPFz9JZbcW7QT65c"}


def issue(provider: Provider, *, scope: str = "openid profile email",
          pre_approved: bool = False, uses: int | None = 5,
          expires_at: dt.datetime | None = None, org: str = "Stadt Musterstadt") -> str:
    from servicekonto.db import db
    from servicekonto.portals.initial_tokens import issue_initial_token

    with provider.app.app_context():
        _, plain = issue_initial_token(db.session, organisation=org, scope=scope,
                                       pre_approved=pre_approved, uses=uses,
                                       expires_at=expires_at, actor="test")
        db.session.commit()
    return plain


def metadata(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"client_name": "Hundesteuer Musterstadt",
                            "redirect_uris": [f"https://hund.musterstadt.example/cb/"
                                              f"{secrets.token_hex(3)}"]}
    body.update(extra)
    return body


def register(provider: Provider, token: str | None, body: Any, *,
             headers: dict[str, str] | None = None, raw: bytes | None = None
             ) -> requests.Response:
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else json.dumps(body).encode()
    return requests.post(provider.base + "/oauth/register", data=data, headers=sent,
                         timeout=TIMEOUT)


def manage(method: str, uri: str, token: str | None, body: Any = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
        return requests.request(method, uri, data=json.dumps(body), headers=headers,
                                timeout=TIMEOUT)
    return requests.request(method, uri, headers=headers, timeout=TIMEOUT)


def count_clients(provider: Provider) -> int:
    from servicekonto.db import db

    with provider.app.app_context():
        return db.session.scalar(select(func.count()).select_from(Client))


def uses_left(provider: Provider) -> list[int | None]:
    from servicekonto.db import db

    with provider.app.app_context():
        return list(db.session.scalars(select(InitialAccessToken.uses_left)
                                       .order_by(InitialAccessToken.id)))


def load(provider: Provider, client_id: str) -> Client | None:
    from servicekonto.db import db

    with provider.app.app_context():
        return db.session.scalar(select(Client).where(Client.client_id == client_id))


def tags(provider: Provider) -> list[str]:
    from servicekonto.db import db

    with provider.app.app_context():
        return list(db.session.scalars(select(AuditEvent.tag).order_by(AuditEvent.id)))


def as_portal(data: dict[str, Any]) -> Portal:
    return Portal(data["client_id"], data.get("client_secret"), data["redirect_uris"][0],
                  data["scope"], data["token_endpoint_auth_method"])


def set_client(provider: Provider, client_id: str, **values: Any) -> None:
    from servicekonto.db import db

    with provider.app.app_context():
        client = db.session.scalar(select(Client).where(Client.client_id == client_id))
        for key, value in values.items():
            setattr(client, key, value)
        db.session.commit()


# -- discovery and the happy path -------------------------------------------------------------

def test_discovery_names_the_registration_endpoint(provider: Provider) -> None:
    doc = http_get(provider.base + "/.well-known/openid-configuration").json()
    assert doc["registration_endpoint"] == provider.base + "/oauth/register"


def test_registration_response_shape_and_storage(provider: Provider) -> None:
    token = issue(provider, scope="openid profile email", uses=2)
    body = metadata(**{
        "client_name#de": "Hundesteuer", "client_name#en": "Dog tax",
        "post_logout_redirect_uris": ["https://hund.musterstadt.example/bye"],
        "scope": "openid email phone profile address",
        "logo_uri": "https://hund.musterstadt.example/logo.png",
        "policy_uri": "https://hund.musterstadt.example/datenschutz",
        "tos_uri": "https://hund.musterstadt.example/agb",
        "contacts": ["it@musterstadt.example"],
        "backchannel_logout_uri": "https://hund.musterstadt.example/bc",
        "backchannel_logout_session_required": True,
        "default_acr_values": ["http://eidas.europa.eu/LoA/low"], "default_max_age": 3600,
        "require_auth_time": True, "id_token_signed_response_alg": "ES256",
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
        "client_uri": "https://hund.musterstadt.example/",  # unknown members are ignored
        "allowed_claims": ["email"],  # not the portal's decision: ignored
    })
    response = register(provider, token, body)
    assert response.status_code == 201, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    data = response.json()
    for member in ("client_id", "client_secret", "client_id_issued_at",
                   "registration_access_token", "registration_client_uri"):
        assert data[member], member
    assert data["client_secret_expires_at"] == 0
    assert abs(data["client_id_issued_at"] - utcnow().timestamp()) < 60
    assert data["registration_client_uri"] == f"{provider.base}/oauth/register/{data['client_id']}"
    assert response.headers["Location"] == data["registration_client_uri"]
    # scope cut to the initial token's scopes (phone and address were not granted)
    assert data["scope"] == "openid email profile"
    assert data["status"] == "pending"
    for key in ("redirect_uris", "post_logout_redirect_uris", "logo_uri", "policy_uri",
                "tos_uri", "contacts", "backchannel_logout_uri",
                "backchannel_logout_session_required", "default_acr_values",
                "default_max_age", "require_auth_time", "id_token_signed_response_alg",
                "grant_types", "response_types", "client_name#de", "client_name#en"):
        assert data[key] == body[key], key
    assert data["token_endpoint_auth_method"] == "client_secret_basic"
    assert data["subject_type"] == "pairwise"
    assert "client_uri" not in data and "allowed_claims" not in data

    client = load(provider, data["client_id"])
    assert client.status == ClientStatus.PENDING and client.registered_via == "api"
    assert client.operator == "Stadt Musterstadt" and client.organisation_id
    assert client.initial_access_token_id is not None and client.allowed_claims is None
    assert client.client_name_i18n == {"de": "Hundesteuer", "en": "Dog tax"}
    assert client.check_client_secret(data["client_secret"])
    assert data["client_secret"] not in (client.client_secret_hash or "")
    assert client.registration_access_token_hash not in (None, data["registration_access_token"])
    assert uses_left(provider) == [1]
    assert "client:client:registered" in tags(provider)

    # RFC 7592 read: the same information, no secret
    read = manage("GET", data["registration_client_uri"], data["registration_access_token"])
    assert read.status_code == 200, read.text
    assert read.headers["Cache-Control"] == "no-store"
    info = read.json()
    assert "client_secret" not in info
    assert {k: v for k, v in info.items()} == {k: v for k, v in data.items()
                                               if k != "client_secret"}


def test_pending_client_is_refused_at_authorize(provider: Provider) -> None:
    data = register(provider, issue(provider), metadata()).json()
    email = provider.citizen()
    browser = provider.browser()
    browser.login(email)
    url, _, _ = provider.authorization_url(provider.rp(as_portal(data)), nonce="n")
    response = browser.http.get(url, allow_redirects=False)
    assert response.status_code == 400 and not response.is_redirect
    assert "text/html" in response.headers["Content-Type"]
    assert "portal" in response.text.lower()


def test_pre_approved_public_and_private_key_jwt_clients(provider: Provider) -> None:
    token = issue(provider, pre_approved=True)
    public = register(provider, token, metadata(token_endpoint_auth_method="none",
                                                redirect_uris=["http://127.0.0.1:8765/cb"]))
    assert public.status_code == 201, public.text
    assert public.json()["status"] == "active"
    assert "client_secret" not in public.json()
    assert "client_secret_expires_at" not in public.json()
    with JSONServer() as server:
        server.documents["/jwks"] = {"keys": [PUBLIC_JWK]}
        pkj = register(provider, token, metadata(token_endpoint_auth_method="private_key_jwt",
                                                 jwks_uri=server.url("/jwks"),
                                                 token_endpoint_auth_signing_alg="ES256"))
        assert pkj.status_code == 201, pkj.text
        assert pkj.json()["jwks_uri"] == server.url("/jwks") and server.hits["/jwks"] == 1
        assert "client_secret" not in pkj.json()
        inline = register(provider, token, metadata(token_endpoint_auth_method="private_key_jwt",
                                                    jwks={"keys": [PUBLIC_JWK]}))
        assert inline.status_code == 201 and inline.json()["jwks"] == {"keys": [PUBLIC_JWK]}
    assert uses_left(provider) == [2]


# -- initial access token errors --------------------------------------------------------------

def test_bad_initial_tokens_get_401_and_nothing_is_stored(provider: Provider) -> None:
    from servicekonto.db import db
    from servicekonto.portals.initial_tokens import hash_token

    exhausted = issue(provider, uses=1)
    assert register(provider, exhausted, metadata()).status_code == 201
    expired = issue(provider)
    revoked = issue(provider)
    with provider.app.app_context():
        rows = {r.token_hash: r for r in db.session.scalars(select(InitialAccessToken))}
        rows[hash_token(expired)].expires_at = utcnow() - dt.timedelta(seconds=1)
        rows[hash_token(revoked)].revoked_at = utcnow()
        db.session.commit()
    before = count_clients(provider)
    cases = {"missing": (None, {}), "unknown": ("x" * 43, {}), "exhausted": (exhausted, {}),
             "expired": (expired, {}), "revoked": (revoked, {}),
             "basic scheme": (None, {"Authorization": "Basic " + exhausted}),
             "in the query": (None, {})}
    for name, (token, headers) in cases.items():
        response = register(provider, token, metadata(), headers=headers)
        assert response.status_code == 401, name
        assert response.json()["error"] == "invalid_token", name
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), name
    assert count_clients(provider) == before
    # the initial token in the query string is never accepted
    response = requests.post(provider.base + f"/oauth/register?access_token={revoked}",
                             json=metadata(), timeout=TIMEOUT)
    assert response.status_code == 401


def test_last_use_is_taken_once_under_concurrency(provider: Provider) -> None:
    token = issue(provider, uses=1)
    results: list[int] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        results.append(register(provider, token, metadata()).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [201, 401, 401, 401]
    assert count_clients(provider) == 1 and uses_left(provider) == [0]


# -- invalid metadata and bad requests --------------------------------------------------------

def test_invalid_metadata_gets_the_spec_error_and_nothing_is_stored(provider: Provider) -> None:
    token = issue(provider, uses=3)
    with JSONServer() as server:
        server.documents["/sector"] = ["https://other.example/cb"]
        server.documents["/nokeys"] = {"keys": []}
        cases: list[tuple[dict[str, Any], str, str]] = [
            ({"redirect_uris": ["http://portal.example/cb"]}, "invalid_redirect_uri", "https"),
            ({"redirect_uris": ["https://p.example/cb#x"]}, "invalid_redirect_uri",
             "fragment"),
            ({"redirect_uris": ["https://*.p.example/cb"]}, "invalid_redirect_uri",
             "wildcard"),
            ({"redirect_uris": ["https://p.example/cb", "https://p.example/cb"]},
             "invalid_redirect_uri", "twice"),
            ({"redirect_uris": "https://p.example/cb"}, "invalid_redirect_uri", "array"),
            ({"redirect_uris": []}, "invalid_redirect_uri", "at least one"),
            ({"client_name": None}, "invalid_client_metadata", "client_name"),
            ({"userinfo_signed_response_alg": "RS256"}, "invalid_client_metadata",
             "not signed"),
            ({"id_token_encrypted_response_alg": "RSA-OAEP"}, "invalid_client_metadata",
             "encrypted"),
            ({"response_types": ["token"]}, "invalid_client_metadata", "response_types"),
            ({"grant_types": ["implicit"]}, "invalid_client_metadata", "grant_types"),
            ({"token_endpoint_auth_method": "client_secret_jwt"}, "invalid_client_metadata",
             "token_endpoint_auth_method"),
            ({"id_token_signed_response_alg": "HS256"}, "invalid_client_metadata",
             "id_token_signed_response_alg"),
            ({"token_endpoint_auth_method": "private_key_jwt",
              "jwks_uri": server.url("/missing")}, "invalid_client_metadata", "jwks_uri"),
            ({"token_endpoint_auth_method": "private_key_jwt",
              "jwks_uri": server.url("/nokeys")}, "invalid_client_metadata", "jwks_uri"),
            ({"token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata",
             "jwks"),
            ({"sector_identifier_uri": server.url("/sector")}, "invalid_client_metadata",
             "does not list"),
            ({"redirect_uris": ["https://a.example/cb", "https://b.example/cb"]},
             "invalid_client_metadata", "sector_identifier_uri"),
            ({"logo_uri": "http://logo.example/x.png"}, "invalid_client_metadata",
             "logo_uri"),
            ({"contacts": ["not an address"]}, "invalid_client_metadata", "contacts"),
            ({"default_max_age": -1}, "invalid_client_metadata", "default_max_age"),
            ({"default_max_age": True}, "invalid_client_metadata", "default_max_age"),
            ({"require_auth_time": "yes"}, "invalid_client_metadata", "require_auth_time"),
            ({"default_acr_values": ["urn:unknown"]}, "invalid_client_metadata",
             "default_acr_values"),
            ({"subject_type": "sectoral"}, "invalid_client_metadata", "subject_type"),
            ({"backchannel_logout_session_required": True}, "invalid_client_metadata",
             "backchannel_logout_uri"),
            ({"software_statement": "eyJ..."}, "unapproved_software_statement", ""),
        ]
        for extra, error, hint in cases:
            response = register(provider, token, metadata(**extra))
            assert response.status_code == 400, (extra, response.text)
            body = response.json()
            assert body["error"] == error, (extra, body)
            assert hint in body.get("error_description", ""), (extra, body)
            assert response.headers["Cache-Control"] == "no-store"
    assert count_clients(provider) == 0
    assert uses_left(provider) == [3]
    assert "client:client:registered" not in tags(provider)


def test_bad_requests_get_json_errors(provider: Provider) -> None:
    token = issue(provider)
    cases = [
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"client_name=x", 415,
         "invalid_client_metadata"),
        ({"Content-Type": "text/plain"}, b"{}", 415, "invalid_client_metadata"),
        ({}, b"{not json", 400, "invalid_client_metadata"),
        ({}, b"[1, 2]", 400, "invalid_client_metadata"),
        ({}, b'{"client_name": NaN}', 400, "invalid_client_metadata"),
        ({}, b"\xff\xfe", 400, "invalid_client_metadata"),
        ({}, json.dumps(metadata(client_name="x" * 70_000)).encode(), 413,
         "invalid_client_metadata"),
    ]
    for headers, raw, status, error in cases:
        response = register(provider, token, None, headers=headers, raw=raw)
        assert response.status_code == status, (raw[:30], response.text)
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["error"] == error
    # a big body without Content-Length (chunked)
    chunks = iter([b'{"client_name": "', b"x" * 70_000, b'"}'])
    response = requests.post(provider.base + "/oauth/register", data=chunks, timeout=TIMEOUT,
                             headers={"Authorization": f"Bearer {token}",
                                      "Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"] == \
        "invalid_client_metadata"
    assert requests.get(provider.base + "/oauth/register", timeout=TIMEOUT).status_code == 405
    assert count_clients(provider) == 0 and uses_left(provider) == [5]


# -- RFC 7592: read, update, delete -----------------------------------------------------------

def test_registration_access_token_errors_leak_nothing(provider: Provider) -> None:
    token = issue(provider)
    first = register(provider, token, metadata()).json()
    second = register(provider, token, metadata()).json()
    uri = first["registration_client_uri"]
    for bearer in (None, "wrong", second["registration_access_token"],
                   first["client_secret"]):
        response = manage("GET", uri, bearer)
        assert response.status_code == 401, bearer
        assert response.json()["error"] == "invalid_token"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    unknown = manage("GET", provider.base + "/oauth/register/nope",
                     first["registration_access_token"])
    assert unknown.status_code == 401 and unknown.json() == manage("GET", uri, "wrong").json()
    for method in ("PUT", "DELETE"):
        assert manage(method, uri, "wrong", body=None).status_code == 401
    assert load(provider, first["client_id"]) is not None


def test_update_is_a_full_replacement(provider: Provider) -> None:
    token = issue(provider, scope="openid profile email")
    data = register(provider, token, metadata(
        scope="openid profile", logo_uri="https://hund.musterstadt.example/logo.png",
        contacts=["a@musterstadt.example"])).json()
    uri, rat = data["registration_client_uri"], data["registration_access_token"]
    host = "https://hund.musterstadt.example"
    update = {k: v for k, v in data.items()
              if k not in ("registration_access_token", "registration_client_uri",
                           "client_secret_expires_at", "client_id_issued_at", "logo_uri",
                           "client_secret")}
    update.update(client_name="Hundesteuer (neu)", redirect_uris=[host + "/cb2", host + "/cb3"],
                  scope="openid profile email")
    response = manage("PUT", uri, rat, update)
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["client_name"] == "Hundesteuer (neu)"
    assert info["redirect_uris"] == [host + "/cb2", host + "/cb3"]
    assert "logo_uri" not in info  # omitted = removed (full replacement)
    assert info["scope"] == "openid profile"  # widening is cut: an administrator decides
    assert info["client_id"] == data["client_id"] and "client_secret" not in info
    assert info["registration_access_token"] == rat
    client = load(provider, data["client_id"])
    assert client.logo_uri is None and client.check_client_secret(data["client_secret"])
    assert client.status == ClientStatus.PENDING

    set_client(provider, data["client_id"], status=ClientStatus.ACTIVE)  # approved: has users
    bad = [
        ({**update, "client_id": "other"}, 400, "invalid_request"),
        ({k: v for k, v in update.items() if k != "client_id"}, 400, "invalid_request"),
        ({**update, "client_secret": "guessed"}, 400, "invalid_request"),
        ({**update, "registration_access_token": rat}, 400, "invalid_request"),
        ({**update, "client_id_issued_at": 1}, 400, "invalid_request"),
        ({**update, "redirect_uris": ["http://evil.example/cb"]}, 400, "invalid_redirect_uri"),
        ({**update, "redirect_uris": ["https://other-host.example/cb"]}, 400,
         "invalid_redirect_uri"),
        ({**update, "subject_type": "public"}, 400, "invalid_client_metadata"),
    ]
    for body, status, error in bad:
        response = manage("PUT", uri, rat, body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"] == error, response.text
    unchanged = load(provider, data["client_id"])
    assert unchanged.redirect_uris == [host + "/cb2", host + "/cb3"]
    assert unchanged.subject_type == "pairwise"

    # the secret sent back must match; switching to private_key_jwt drops it
    ok = manage("PUT", uri, rat, {**update, "client_secret": data["client_secret"],
                                  "token_endpoint_auth_method": "private_key_jwt",
                                  "jwks": {"keys": [PUBLIC_JWK]}})
    assert ok.status_code == 200, ok.text
    assert "client_secret_expires_at" not in ok.json()
    assert load(provider, data["client_id"]).client_secret_hash is None
    back = manage("PUT", uri, rat, update)  # back to client_secret_basic: a new secret, once
    assert back.status_code == 200 and back.json()["client_secret"]
    assert load(provider, data["client_id"]).check_client_secret(back.json()["client_secret"])
    assert tags(provider).count("client:client:updated") == 3

    # a pending portal (no citizen has a sub there yet) may still move to another host
    set_client(provider, data["client_id"], status=ClientStatus.PENDING)
    moved = manage("PUT", uri, rat, {**update, "redirect_uris": ["https://neu.example/cb"]})
    assert moved.status_code == 200, moved.text
    assert load(provider, data["client_id"]).sector_identifier == "neu.example"


def test_delete_revokes_tokens_and_the_registration_token(provider: Provider) -> None:
    token = issue(provider, pre_approved=True, scope="openid profile email")
    data = register(provider, token, metadata(redirect_uris=["http://127.0.0.1:9/cb/del"],
                                              scope="openid profile")).json()
    assert data["status"] == "active"
    portal = as_portal(data)
    email = provider.citizen()
    tokens, _, _ = provider.login_flow(portal, provider.browser(), email)
    userinfo = provider.base + "/userinfo"
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert http_get(userinfo, headers=auth).status_code == 200

    uri, rat = data["registration_client_uri"], data["registration_access_token"]
    deleted = manage("DELETE", uri, rat)
    assert deleted.status_code == 204 and deleted.text == ""
    assert http_get(userinfo, headers=auth).status_code == 401
    assert manage("GET", uri, rat).status_code == 401
    assert manage("DELETE", uri, rat).status_code == 401
    assert load(provider, data["client_id"]) is None
    from servicekonto.db import db

    with provider.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Token)) == 0
    events = provider.audit("client:client:deleted")
    assert events and events[0]["client_id"] == data["client_id"]
    assert events[0]["details"]["tokens_revoked"] == 1


def test_suspended_client_cannot_update_itself(provider: Provider) -> None:
    data = register(provider, issue(provider), metadata()).json()
    set_client(provider, data["client_id"], status=ClientStatus.SUSPENDED)
    body = {k: v for k, v in data.items() if k in ("client_id", "client_name", "redirect_uris")}
    response = manage("PUT", data["registration_client_uri"],
                      data["registration_access_token"], body)
    assert response.status_code == 403
    assert manage("GET", data["registration_client_uri"],
                  data["registration_access_token"]).json()["status"] == "suspended"


# -- allowed_claims: consent page, ID token, userinfo -----------------------------------------

def test_allowed_claims_limit_consent_id_token_and_userinfo(provider: Provider) -> None:
    token = issue(provider, pre_approved=True, scope="openid profile email address")
    data = register(provider, token, metadata(redirect_uris=["http://127.0.0.1:9/cb/ac"],
                                              scope="openid profile email address")).json()
    set_client(provider, data["client_id"], allowed_claims=["given_name", "family_name"])
    portal = as_portal(data)
    email = provider.citizen()
    browser = provider.browser()
    claims = json.dumps({"id_token": {"birthdate": None, "email": None, "given_name": None},
                         "userinfo": {"phone_number": None}})
    rp = provider.rp(portal)
    url, _, _ = provider.authorization_url(rp, nonce="n1", claims=claims)
    page = browser.go(url, email=email, password=PASSWORD, consent=None).response
    assert "/authorize/consent" in page.text
    assert "Vor- und Nachname" in page.text or "First and last name" in page.text
    for label in ("E-Mail", "E-mail", "Geburtsdatum", "Date of birth", "Postanschrift",
                  "Postal address", "Telefon"):
        assert label not in page.text, label

    tokens, _, _ = provider.login_flow(portal, browser, scope=portal.scope, claims=claims)
    id_claims = provider.id_claims(tokens["id_token"])
    assert id_claims["given_name"] == "Erika"
    assert not {"birthdate", "email"} & set(id_claims)
    info = http_get(provider.base + "/userinfo",
                    headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert set(info) == {"sub", "given_name", "family_name"}

    # an approval that narrows later applies at once to tokens already issued
    set_client(provider, data["client_id"], allowed_claims=["family_name"])
    info = http_get(provider.base + "/userinfo",
                    headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert set(info) == {"sub", "family_name"}
    # None = every claim of its scopes
    set_client(provider, data["client_id"], allowed_claims=None)
    tokens, _, _ = provider.login_flow(portal, browser, scope=portal.scope)
    info = http_get(provider.base + "/userinfo",
                    headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert {"email", "address", "given_name", "birthdate"} <= set(info)


@pytest.mark.parametrize("allowed", [[]])
def test_empty_allowed_claims_release_nothing_personal(provider: Provider,
                                                       allowed: list[str]) -> None:
    portal = provider.portal(scope="openid profile email", allowed_claims=allowed,
                             redirect_uri="http://127.0.0.1:9/cb/empty")
    tokens, _, _ = provider.login_flow(portal, provider.browser(), provider.citizen())
    info = http_get(provider.base + "/userinfo",
                    headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert set(info) == {"sub"}


# -- the initial-token service (used by the operator pages too) --------------------------------

def test_initial_token_service(app) -> None:
    from servicekonto.db import db
    from servicekonto.portals import initial_tokens as it

    with app.app_context():
        session = db.session
        row, plain = it.issue_initial_token(session, organisation="Land Hessen",
                                            scope="profile email", uses=None, actor="test")
        session.commit()
        assert row.scope == "openid profile email" and row.token_hash != plain
        for _ in range(3):  # unlimited uses
            assert it.consume_initial_token(session, plain).id == row.id
        session.commit()
        assert session.get(InitialAccessToken, row.id).uses_left is None
        assert it.token_state(row) == "usable"
        it.revoke_initial_token(session, row.id, actor="test")
        session.commit()
        with pytest.raises(it.InitialTokenRevoked):
            it.consume_initial_token(session, plain)
        with pytest.raises(it.UnknownInitialToken):
            it.check_initial_token(session, "")
        with pytest.raises(it.InitialTokenUsageError):
            it.issue_initial_token(session, organisation="Land Hessen", uses=0, actor="test")
        with pytest.raises(it.InitialTokenUsageError):
            it.issue_initial_token(session, organisation=" ", actor="test")
        once, plain_once = it.issue_initial_token(session, organisation=row.organisation,
                                                  uses=1, actor="test")
        session.commit()
        it.consume_initial_token(session, plain_once)
        session.rollback()  # the registration failed: the use is not taken
        assert it.check_initial_token(session, plain_once).uses_left == 1
        it.consume_initial_token(session, plain_once)
        session.commit()
        with pytest.raises(it.InitialTokenExhausted):
            it.consume_initial_token(session, plain_once)
        assert [t.id for t in it.list_initial_tokens(session)] == [row.id, once.id]
