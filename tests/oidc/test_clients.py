"""Client registration: validation, hashed secrets, status, Authlib's ClientMixin, the CLI."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from oidc.clients import (
    InvalidClientMetadata,
    create_client,
    get_client,
    rotate_secret,
    set_status,
)
from oidc.models import Client, ClientStatus, SigningKey, Token
from servicekonto.audit.models import AuditEvent
from servicekonto.audit.tags import AuditTag
from servicekonto.db import utcnow
from tests.oidc.json_server import JSONServer

PUBLIC_JWK = {"kty": "EC", "crv": "P-256", "kid": "k1",
              "x": "4sSEKapWTSoyg1UjEO2rdkcFcS1WzcATEFRNlGkLT5Q",
              "y": "gpxLrfCcM9v77Hx7fUcMjUQzcnSiPFz9JZbcW7QT65c"}


@pytest.fixture
def session(app):
    with app.app_context():
        from servicekonto.db import db

        yield db.session


def unique(prefix: str = "portal") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def make(session, **kwargs):
    kwargs.setdefault("name", unique())
    kwargs.setdefault("redirect_uris", [f"https://{unique('host')}.example/cb"])
    client, secret = create_client(session, **kwargs)
    session.commit()
    return client, secret


# -- creation and secrets ---------------------------------------------------------------------

def test_confidential_client_gets_a_secret_stored_only_hashed(session):
    client, secret = make(session, scope="openid profile email")
    assert secret and len(secret) >= 43
    assert client.client_secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in json.dumps([client.client_secret_hash, client.client_id])
    assert client.check_client_secret(secret)
    assert not client.check_client_secret(secret + "x")
    assert not client.check_client_secret("")
    assert client.status == ClientStatus.ACTIVE and not client.is_public
    assert client.scope == "openid profile email"
    assert client.sector_identifier == client.redirect_uris[0].split("/")[2]
    events = session.scalars(select(AuditEvent).where(
        AuditEvent.tag == AuditTag.CLIENT_CREATED)).all()
    assert [e.client_id for e in events] == [client.client_id]
    assert secret not in events[0].details and client.client_secret_hash not in events[0].details


def test_public_client_has_no_secret(session):
    client, secret = make(session, auth_method="none")
    assert secret is None and client.client_secret_hash is None
    assert client.is_public
    assert not client.check_client_secret("anything")
    assert client.check_endpoint_auth_method("none", "token")
    assert not client.check_endpoint_auth_method("client_secret_basic", "token")


def test_private_key_jwt_client(session):
    client, secret = make(session, auth_method="private_key_jwt",
                          jwks={"keys": [PUBLIC_JWK]})
    assert secret is None and client.jwks == {"keys": [PUBLIC_JWK]}
    client2, _ = make(session, auth_method="private_key_jwt",
                      jwks_uri="https://portal.example/jwks.json")
    assert client2.jwks_uri == "https://portal.example/jwks.json"


def test_client_ids_are_unique(session):
    ids = {make(session)[0].client_id for _ in range(5)}
    assert len(ids) == 5


def test_expired_secret_is_refused(session):
    client, secret = make(session)
    client.client_secret_expires_at = utcnow() - dt.timedelta(seconds=1)
    assert not client.check_client_secret(secret)


BAD = [
    ({"redirect_uris": ["http://portal.example/cb"]}, "redirect_uris", "https"),
    ({"redirect_uris": ["https://portal.example/cb#frag"]}, "redirect_uris", "fragment"),
    ({"redirect_uris": ["https://*.example/cb"]}, "redirect_uris", "wildcard"),
    ({"redirect_uris": ["https://a.example/cb", "https://a.example/cb"]}, "redirect_uris",
     "twice"),
    ({"redirect_uris": ["/relative"]}, "redirect_uris", "absolute"),
    ({"redirect_uris": ["https://user:pw@a.example/cb"]}, "redirect_uris", "credentials"),
    ({"redirect_uris": []}, "redirect_uris", "required"),
    ({"redirect_uris": ["https://a.example/cb", "https://b.example/cb"]},
     "sector_identifier_uri", "several hosts"),
    ({"auth_method": "client_secret_jwt"}, "token_endpoint_auth_method", "not one of"),
    ({"auth_method": "private_key_jwt"}, "jwks", "needs jwks"),
    ({"auth_method": "private_key_jwt", "jwks": {"keys": [{**PUBLIC_JWK, "d": "x"}]}},
     "jwks", "private"),
    ({"auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "oct", "k": "abc"}]}},
     "jwks", "RSA, EC"),
    ({"auth_method": "private_key_jwt", "jwks": {"keys": [PUBLIC_JWK]},
      "jwks_uri": "https://a.example/j"}, "jwks", "not both"),
    ({"jwks_uri": "http://a.example/jwks"}, "jwks_uri", "https"),
    ({"id_token_signed_response_alg": "HS256"}, "id_token_signed_response_alg", "not one of"),
    ({"id_token_signed_response_alg": "none"}, "id_token_signed_response_alg", "not one of"),
    ({"subject_type": "random"}, "subject_type", "not one of"),
    ({"grant_types": ["password"]}, "grant_types", "not one of"),
    ({"grant_types": ["implicit"]}, "grant_types", "not one of"),
    ({"grant_types": ["refresh_token", "client_credentials"], "redirect_uris": []},
     "grant_types", "needs authorization_code"),
    ({"auth_method": "none", "grant_types": ["authorization_code", "client_credentials"]},
     "grant_types", "public"),
    ({"scope": "openid pro\"file"}, "scope", "not a valid scope"),
    ({"scope": ""}, "scope", "at least one"),
    ({"name": "  "}, "client_name", "required"),
    ({"post_logout_redirect_uris": ["http://a.example/bye"]}, "post_logout_redirect_uris",
     "https"),
    ({"backchannel_logout_uri": "https://a.example/bc#x"}, "backchannel_logout_uri",
     "fragment"),
    ({"backchannel_logout_session_required": True}, "backchannel_logout_session_required",
     "needs"),
]


@pytest.mark.parametrize("kwargs,field,message", BAD)
def test_invalid_metadata_is_refused_with_the_field(session, kwargs, field, message):
    with pytest.raises(InvalidClientMetadata) as info:
        create_client(session, **{"name": unique(),
                                  "redirect_uris": ["https://a.example/cb"], **kwargs})
    assert info.value.field == field
    assert message in info.value.description
    expected = "invalid_redirect_uri" if field == "redirect_uris" else "invalid_client_metadata"
    assert info.value.error == expected
    session.rollback()
    assert session.scalar(select(Client).where(Client.client_name == kwargs.get("name", ""))) \
        is None


def test_loopback_http_only_when_allowed(app, session):
    client, _ = make(session, redirect_uris=["http://127.0.0.1:8080/cb"])
    assert client.redirect_uris == ["http://127.0.0.1:8080/cb"]
    make(session, redirect_uris=["http://[::1]:8080/cb"])
    make(session, redirect_uris=["http://localhost/cb"])
    app.config["SERVICEKONTO"]["allow_loopback_http"] = False
    with pytest.raises(InvalidClientMetadata, match="loopback"):
        create_client(session, name=unique(), redirect_uris=["http://127.0.0.1:8080/cb"])


def test_client_credentials_client_needs_no_redirect_uri(session):
    client, secret = make(session, redirect_uris=[], grant_types=["client_credentials"])
    assert secret and client.redirect_uris == []
    assert client.check_grant_type("client_credentials")
    assert not client.check_grant_type("authorization_code")
    assert not client.check_response_type("code")


def test_sector_identifier_uri_is_fetched_and_checked(session):
    redirects = ["https://a.musterstadt.de/cb", "https://b.musterstadt.de/cb"]
    with JSONServer() as server:
        server.documents["/sector.json"] = redirects
        client, _ = make(session, redirect_uris=redirects,
                         sector_identifier_uri=server.url("/sector.json"))
        assert client.sector_identifier == "127.0.0.1"
        server.documents["/short.json"] = redirects[:1]
        with pytest.raises(InvalidClientMetadata) as info:
            create_client(session, name=unique(), redirect_uris=redirects,
                          sector_identifier_uri=server.url("/short.json"))
    assert info.value.field == "sector_identifier_uri"
    assert "b.musterstadt.de" in info.value.description


# -- Authlib ClientMixin ---------------------------------------------------------------------

def test_client_mixin_methods(session):
    client, _ = make(session, redirect_uris=["https://a.example/cb"], scope="openid email",
                     grant_types=["authorization_code", "refresh_token"])
    assert client.get_client_id() == client.client_id
    assert client.get_default_redirect_uri() == "https://a.example/cb"
    assert client.check_redirect_uri("https://a.example/cb")
    for near in ("https://a.example/cb/", "https://a.example/cb?x=1", "https://A.example/cb",
                 "https://a.example/c"):
        assert not client.check_redirect_uri(near)
    assert client.get_allowed_scope("email profile openid email") == "email openid"
    assert client.get_allowed_scope("") == ""
    assert client.check_response_type("code")
    assert not client.check_response_type("token")
    assert not client.check_response_type("code id_token")
    assert client.check_grant_type("refresh_token")
    assert not client.check_grant_type("client_credentials")
    assert client.check_endpoint_auth_method("client_secret_basic", "token")
    assert client.check_endpoint_auth_method("client_secret_basic", "revocation")
    assert not client.check_endpoint_auth_method("client_secret_post", "token")
    assert not client.check_endpoint_auth_method("none", "token")
    two, _ = make(session, redirect_uris=["https://a.example/1", "https://a.example/2"])
    assert two.get_default_redirect_uri() is None


# -- status and secrets -----------------------------------------------------------------------

def _token(session, client) -> Token:
    token = Token(client_pk=client.id, user_id=None,
                  access_token_hash=secrets.token_hex(32), scope="openid",
                  family_id=secrets.token_hex(8), grant_type="client_credentials",
                  access_expires_at=utcnow() + dt.timedelta(minutes=10))
    session.add(token)
    session.flush()
    return token


def test_disabling_revokes_tokens_at_once(session):
    client, secret = make(session)
    other, _ = make(session)
    tokens = [_token(session, client) for _ in range(3)]
    untouched = _token(session, other)
    session.commit()
    assert set_status(session, client, ClientStatus.SUSPENDED, actor="cli") == 3
    session.commit()
    session.expire_all()
    assert all(session.get(Token, t.id).revoked_at is not None for t in tokens)
    assert session.get(Token, untouched.id).revoked_at is None
    assert get_client(client.client_id) is None
    assert get_client(client.client_id, include_inactive=True) is client
    assert not client.check_endpoint_auth_method("client_secret_basic", "token")
    assert not client.check_grant_type("authorization_code")
    assert AuditTag.CLIENT_SUSPENDED in session.scalars(select(AuditEvent.tag)).all()
    set_status(session, client, ClientStatus.ACTIVE)
    session.commit()
    assert get_client(client.client_id) is client


def test_rotate_secret(session):
    client, old = make(session)
    new = rotate_secret(session, client, actor="cli")
    session.commit()
    assert new != old
    assert client.check_client_secret(new) and not client.check_client_secret(old)
    events = session.scalars(select(AuditEvent).where(
        AuditEvent.tag == AuditTag.CLIENT_SECRET_ROTATED)).all()
    assert len(events) == 1 and new not in events[0].details and old not in events[0].details
    public, _ = make(session, auth_method="none")
    with pytest.raises(InvalidClientMetadata):
        rotate_secret(session, public)


def test_get_client_ignores_odd_ids(session):
    assert get_client("") is None
    assert get_client("x" * 200) is None
    assert get_client(None) is None  # type: ignore[arg-type]


# -- the real console script ------------------------------------------------------------------

def test_cli_create_json_list_show_disable(app, cli):
    name = unique("Bauportal")
    result = cli("clients", "create", "--json", "--name", name,
                 "--redirect-uri", "https://bau.musterstadt.de/cb",
                 "--redirect-uri", "https://bau.musterstadt.de/cb2",
                 "--post-logout-redirect-uri", "https://bau.musterstadt.de/bye",
                 "--scope", "openid profile", "--scope", "email",
                 "--grant-type", "authorization_code", "--grant-type", "refresh_token",
                 "--auth-method", "client_secret_post", "--subject-type", "pairwise",
                 "--alg", "ES256", "--backchannel-logout-uri", "https://bau.musterstadt.de/bc",
                 "--backchannel-logout-session-required", "--operator", "Musterstadt",
                 "--always-refresh")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["client_name"] == name and data["client_secret"]
    assert data["scope"] == "openid profile email"
    assert data["id_token_signed_response_alg"] == "ES256"
    assert data["token_endpoint_auth_method"] == "client_secret_post"
    assert data["backchannel_logout_session_required"] is True
    engine = app.extensions["servicekonto.db"].engine
    with Session(engine) as session:
        client = session.scalar(select(Client).where(Client.client_id == data["client_id"]))
        assert client.check_client_secret(data["client_secret"])
        assert client.client_secret_hash != data["client_secret"]
        assert client.always_issue_refresh_token and client.operator == "Musterstadt"

    listed = cli("clients", "list")
    assert listed.returncode == 0 and data["client_id"] in listed.stdout
    shown = cli("clients", "show", data["client_id"])
    assert shown.returncode == 0 and json.loads(shown.stdout)["client_name"] == name
    assert data["client_secret"] not in shown.stdout + listed.stdout

    disabled = cli("clients", "disable", data["client_id"])
    assert disabled.returncode == 0, disabled.stderr
    with Session(engine) as session:
        client = session.scalar(select(Client).where(Client.client_id == data["client_id"]))
        assert client.status == ClientStatus.SUSPENDED
    again = cli("clients", "disable", data["client_id"])
    assert again.returncode != 0 and "already suspended" in again.stderr


def test_cli_public_and_private_key_jwt_clients(cli, tmp_path):
    public = cli("clients", "create", "--json", "--name", unique(), "--auth-method", "none",
                 "--redirect-uri", "http://127.0.0.1:8765/cb")
    assert public.returncode == 0, public.stderr
    assert "client_secret" not in json.loads(public.stdout)
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [PUBLIC_JWK]}))
    pkj = cli("clients", "create", "--json", "--name", unique(), "--auth-method",
              "private_key_jwt", "--jwks-file", str(jwks_file),
              "--redirect-uri", "https://a.example/cb")
    assert pkj.returncode == 0, pkj.stderr
    assert json.loads(pkj.stdout)["jwks"] == {"keys": [PUBLIC_JWK]}


@pytest.mark.parametrize("args,message", [
    (["--redirect-uri", "http://portal.example/cb"], "invalid redirect_uris"),
    (["--redirect-uri", "https://a.example/cb", "--alg", "HS256"],
     "invalid id_token_signed_response_alg"),
    (["--redirect-uri", "https://a.example/cb", "--auth-method", "private_key_jwt"],
     "invalid jwks"),
    (["--redirect-uri", "https://a.example/cb", "--jwks-file", "/nonexistent/jwks.json"],
     "cannot read --jwks-file"),
])
def test_cli_create_errors_exit_non_zero(cli, args, message):
    result = cli("clients", "create", "--json", "--name", unique(), *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_cli_show_unknown_client(cli):
    result = cli("clients", "show", "does-not-exist")
    assert result.returncode != 0 and "no client" in result.stderr


def test_cli_keys_list_rotate_retire(app, cli):
    first = cli("keys", "list", "--json")
    assert first.returncode == 0, first.stderr
    engine = app.extensions["servicekonto.db"].engine
    rotated = cli("keys", "rotate", "--alg", "RS256", "--now", "--json")
    assert rotated.returncode == 0, rotated.stderr
    new_kid = json.loads(rotated.stdout)["kid"]
    listed = [json.loads(line) for line in cli("keys", "list", "--json").stdout.splitlines()]
    rs = {k["kid"]: k for k in listed if k["alg"] == "RS256"}
    assert rs[new_kid]["signing"] is True
    with Session(engine) as session:
        assert session.scalar(select(SigningKey).where(SigningKey.kid == new_kid)) is not None

    refused = cli("keys", "retire", new_kid)
    assert refused.returncode != 0 and "rotate first" in refused.stderr
    pending = json.loads(cli("keys", "rotate", "--alg", "RS256", "--json").stdout)["kid"]
    retired = cli("keys", "retire", pending)
    assert retired.returncode == 0, retired.stderr
    assert "published until" in retired.stdout
    unknown = cli("keys", "retire", "no-such-kid")
    assert unknown.returncode != 0 and "no signing key" in unknown.stderr
    bad = cli("keys", "rotate", "--alg", "HS256")
    assert bad.returncode != 0 and "unsupported" in bad.stderr
    human = cli("keys", "list")
    assert human.returncode == 0 and new_kid in human.stdout
