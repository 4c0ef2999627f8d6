"""The administrator's side of registration through the real console script: initial access
tokens, approving, suspending and deleting portals; and the full run from an initial token to
a citizen signing in at the registered, approved portal."""

from __future__ import annotations

import json

import pytest
import requests
from sqlalchemy import select

from oidc.models import Client, ClientStatus
from servicekonto.portals.models import InitialAccessToken, Organisation
from tests.oidc.conftest import Portal, Provider, http_get

TIMEOUT = 30


@pytest.fixture
def runner(app):
    """In-process CLI (the same commands, faster than a subprocess)."""
    from servicekonto.cli import main

    test_runner = app.test_cli_runner()
    return lambda *args, **kw: test_runner.invoke(main, list(args), catch_exceptions=False,
                                                  **kw)


def tags(app) -> list[str]:
    from servicekonto.audit.models import AuditEvent
    from servicekonto.db import db

    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.tag).order_by(AuditEvent.id)))


def register(base: str, token: str, body: dict) -> requests.Response:
    return requests.post(base + "/oauth/register", json=body, timeout=TIMEOUT,
                         headers={"Authorization": f"Bearer {token}"})


# -- initial tokens ---------------------------------------------------------------------------

def test_initial_token_prints_only_the_token_and_creates_the_organisation(app, cli) -> None:
    result = cli("clients", "initial-token", "--operator", "Stadt Musterstadt",
                 "--scopes", "openid profile email", "--uses", "3", "--expires", "30d")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n" and len(token) >= 40
    assert "created organisation 'Stadt Musterstadt'" in result.stderr
    assert "3 use(s)" in result.stderr and "pending approval" in result.stderr
    again = cli("clients", "initial-token", "--operator", "stadt musterstadt", "--pre-approved",
                "--unlimited-uses", "--expires", "never")
    assert again.returncode == 0, again.stderr
    assert "created organisation" not in again.stderr and "pre-approved" in again.stderr

    from servicekonto.db import db
    from servicekonto.portals.initial_tokens import hash_token

    with app.app_context():
        assert len(db.session.scalars(select(Organisation)).all()) == 1
        rows = db.session.scalars(select(InitialAccessToken)
                                  .order_by(InitialAccessToken.id)).all()
        assert rows[0].token_hash == hash_token(token) and rows[0].uses_left == 3
        assert rows[0].scope == "openid profile email" and not rows[0].pre_approved
        assert rows[1].uses_left is None and rows[1].expires_at is None
        assert rows[1].pre_approved

    listed = cli("clients", "initial-tokens", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [e["state"] for e in entries] == ["usable", "usable"]
    assert token not in listed.stdout and hash_token(token) not in listed.stdout
    human = cli("clients", "initial-tokens")
    assert "Stadt Musterstadt" in human.stdout and token not in human.stdout

    revoked = cli("clients", "revoke-initial-token", str(entries[0]["id"]))
    assert revoked.returncode == 0, revoked.stderr
    twice = cli("clients", "revoke-initial-token", str(entries[0]["id"]))
    assert twice.returncode == 1 and "already revoked" in twice.stderr
    unknown = cli("clients", "revoke-initial-token", "999")
    assert unknown.returncode == 1 and "no initial access token" in unknown.stderr
    states = [json.loads(line)["state"]
              for line in cli("clients", "initial-tokens", "--json").stdout.splitlines()]
    assert states == ["revoked", "usable"]
    events = tags(app)
    assert events.count("client:initial_token:issued") == 2
    assert events.count("client:initial_token:revoked") == 1
    assert events.count("operator:organisation:created") == 1


@pytest.mark.parametrize("args,message", [
    (["--scopes", "openid banking"], "unknown scope banking"),
    (["--expires", "tomorrow"], "--expires"),
    (["--expires", "2001-01-01T00:00:00"], "in the past"),
    (["--uses", "0"], "--uses"),
])
def test_initial_token_usage_errors(runner, args, message) -> None:
    result = runner("clients", "initial-token", "--operator", "Stadt X", *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


# -- approve, suspend, delete, list --status --------------------------------------------------

def test_approve_suspend_delete_and_list_by_status(app, runner, provider: Provider) -> None:
    token = runner("clients", "initial-token", "--operator", "Kreis Beispiel",
                   "--scopes", "openid email").stdout.strip().splitlines()[-1]
    data = register(provider.base, token, {"client_name": "Kfz-Zulassung",
                                           "redirect_uris": ["https://kfz.example/cb"]}).json()
    client_id = data["client_id"]
    other = provider.portal(redirect_uri="https://other.example/cb")

    pending = runner("clients", "list", "--status", "pending")
    assert client_id in pending.output and other.client_id not in pending.output
    active = runner("clients", "list", "--status", "active", "--json")
    assert [json.loads(line)["client_id"] for line in active.output.splitlines()] == \
        [other.client_id]

    approved = runner("clients", "approve", client_id)
    assert approved.exit_code == 0 and "approved" in approved.output
    again = runner("clients", "approve", client_id)
    assert again.exit_code == 1 and "not pending" in again.output
    suspended = runner("clients", "suspend", client_id)
    assert suspended.exit_code == 0 and "suspended" in suspended.output
    assert runner("clients", "disable", client_id).exit_code == 1  # alias: already suspended

    refused = runner("clients", "delete", client_id)  # no terminal to confirm on
    assert refused.exit_code == 1 and "--yes" in refused.output
    deleted = runner("clients", "delete", client_id, "--yes")
    assert deleted.exit_code == 0 and "deleted" in deleted.output
    assert runner("clients", "show", client_id).exit_code == 1
    events = tags(app)
    for tag in ("client:client:registered", "client:client:approved",
                "client:client:suspended", "client:client:deleted"):
        assert tag in events, tag


# -- the full run -------------------------------------------------------------------------------

def test_full_run_from_initial_token_to_citizen_sign_in(app, cli, provider: Provider) -> None:
    # 1. an administrator issues an initial access token (the real console script)
    issued = cli("clients", "initial-token", "--operator", "Stadt Musterstadt",
                 "--scopes", "openid profile email", "--uses", "1")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()

    # 2. the portal registers itself over HTTP, finding the endpoint through discovery
    doc = http_get(provider.base + "/.well-known/openid-configuration").json()
    redirect_uri = "http://127.0.0.1:9/cb/full-run"
    response = requests.post(doc["registration_endpoint"], timeout=TIMEOUT,
                             headers={"Authorization": f"Bearer {token}"},
                             json={"client_name": "Hundesteuer Musterstadt",
                                   "client_name#en": "Dog tax Musterstadt",
                                   "redirect_uris": [redirect_uri],
                                   "grant_types": ["authorization_code"],
                                   "scope": "openid profile email address",
                                   "contacts": ["it@musterstadt.example"]})
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["status"] == "pending" and data["scope"] == "openid profile email"
    portal = Portal(data["client_id"], data["client_secret"], redirect_uri, data["scope"],
                    "client_secret_basic")
    # the token was for one registration
    assert register(provider.base, token, {"client_name": "x",
                                           "redirect_uris": [redirect_uri]}).status_code == 401

    # 3. pending: a citizen is refused with a page, never redirected
    email = provider.citizen()
    browser = provider.browser()
    url, _, _ = provider.authorization_url(provider.rp(portal), nonce="n")
    refused = browser.go(url, email=email)
    assert refused.url is None and refused.response.status_code == 400
    assert "text/html" in refused.response.headers["Content-Type"]

    # 4. the administrator finds and approves it, limiting the claims it may receive
    pending = cli("clients", "list", "--status", "pending")
    assert data["client_id"] in pending.stdout
    from servicekonto.db import db

    with app.app_context():
        client = db.session.scalar(select(Client).where(Client.client_id == data["client_id"]))
        client.allowed_claims = ["given_name", "family_name", "email"]
        db.session.commit()
    approved = cli("clients", "approve", data["client_id"])
    assert approved.returncode == 0, approved.stderr
    assert "given_name" in approved.stdout

    # 5. the citizen signs in with an ordinary OIDC client (Authlib)
    tokens, rp, _ = provider.login_flow(portal, browser, email)
    id_claims = provider.id_claims(tokens["id_token"])
    assert id_claims["aud"] == data["client_id"] and id_claims["iss"] == provider.issuer
    info = rp.get(provider.base + "/userinfo", timeout=TIMEOUT).json()
    assert set(info) == {"sub", "given_name", "family_name", "email"}
    assert info["sub"] == id_claims["sub"]
    with app.app_context():
        client = db.session.scalar(select(Client).where(Client.client_id == data["client_id"]))
        assert client.status == ClientStatus.ACTIVE
    released = provider.audit("oidc:claims:released")
    assert released and all("birthdate" not in e["details"]["claims"] for e in released)
