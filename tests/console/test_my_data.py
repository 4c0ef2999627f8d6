"""My data: the JSON export (no secrets, no hashes) and deleting the account (Art. 17)."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from oidc.models import Token
from servicekonto.accounts.models import User
from servicekonto.audit.models import AuditEvent
from servicekonto.audit.service import seal, verify
from servicekonto.consent.models import Consent
from servicekonto.db import db
from servicekonto.sessions.models import WebSession
from tests.accounts.conftest import PASSWORD as PASSWORD_ACCOUNTS
from tests.console.conftest import (
    bc_portal,
    browser_post,
    events,
    http_get,
    logged_in,
    logout_claims,
    wait_deliveries,
)
from tests.oidc.conftest import PASSWORD

HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


def _setup(provider, receiver):  # noqa: ANN001, ANN202
    email = provider.citizen()
    browser = provider.browser()
    hund = bc_portal(provider, "Hundesteuer", receiver)
    token, _, _ = provider.login_flow(hund, browser, email)
    assert http_get(provider.base + "/userinfo", headers={
        "Authorization": f"Bearer {token['access_token']}"}).status_code == 200
    return email, browser, hund, token


def test_export_contains_everything_without_secrets(provider, receiver):
    email, browser, hund, token = _setup(provider, receiver)
    assert "Meine Daten herunterladen (JSON)" in browser.http.get(
        provider.base + "/account/data").text
    response = browser.http.get(provider.base + "/account/data/export.json")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    data = response.json()
    assert set(data) >= {"account", "consents", "sessions", "tokens", "disclosures",
                         "sign_ins", "audit_events"}
    assert data["account"]["email"] == email
    assert data["account"]["postal_code"] == "51147"
    assert data["account"]["birthdate"] == "1964-08-12"
    assert "password_hash" not in data["account"]
    [consent] = data["consents"]
    assert consent["client_id"] == hund.client_id and "address" in consent["granted_claims"]
    [session_] = data["sessions"]
    assert session_["current"] is True and session_["ip"] == "127.0.0.1"
    assert len(data["tokens"]) == 1 and data["tokens"][0]["client_id"] == hund.client_id
    assert {d["via"] for d in data["disclosures"]} == {"id_token", "userinfo"}
    assert data["sign_ins"][0]["outcome"] == "success"
    tags = {e["event"] for e in data["audit_events"]}
    assert {"account:login:success", "consent:grant:granted", "oidc:claims:released"} <= tags

    body = response.text
    assert not HEX64.search(body), HEX64.search(body)  # no token, session or UA hashes
    assert "argon2" not in body
    secrets_ = [token["access_token"], token.get("refresh_token"), hund.secret,
                browser.http.cookies.get("sk_session")]
    for secret in filter(None, secrets_):
        assert secret not in body
    with provider.app.app_context():
        row = db.session.scalar(select(Token))
        assert row.access_token_hash not in body


def test_delete_needs_the_password(provider, receiver):
    email, browser, hund, token = _setup(provider, receiver)
    page = browser.http.get(provider.base + "/account/delete")
    assert 'autocomplete="current-password"' in page.text
    wrong = browser_post(browser, "/account/delete", {"current_password": "falsch-falsch",
                                                      "confirm": "y"})
    assert wrong.status_code == 200 and "Das Passwort ist falsch." in wrong.text
    unconfirmed = browser_post(browser, "/account/delete", {"current_password": PASSWORD})
    assert unconfirmed.status_code == 200
    assert "Bitte bestätigen Sie, dass Sie Ihr Konto löschen möchten." in unconfirmed.text
    assert logged_in(browser)
    user_id = provider.user_id(email)
    assert events(provider.app, "account:login:failure", user_id)[-1]["details"] == {
        "reason": "wrong_current_password"}
    assert events(provider.app, "account:user:deleted") == []


def test_delete_account(provider, receiver):
    email, browser, hund, token = _setup(provider, receiver)
    wohn = bc_portal(provider, "Wohngeld", receiver)
    provider.login_flow(wohn, browser)
    other_browser = provider.browser()
    other_browser.login(email)
    user_id = provider.user_id(email)
    subs = {"Hundesteuer": provider.id_claims(token["id_token"])["sub"]}

    response = browser_post(browser, "/account/delete", {"current_password": PASSWORD,
                                                         "confirm": "y"})
    assert response.status_code == 200 and "Konto gelöscht" in response.text
    wait_deliveries(provider)

    # signed out everywhere, login fails, tokens gone
    assert not logged_in(browser) and not logged_in(other_browser)
    again = provider.browser().login(email)
    assert again.status_code == 200 and "falsch" in again.text
    assert http_get(provider.base + "/userinfo", headers={
        "Authorization": f"Bearer {token['access_token']}"}).status_code == 401
    # every portal with consent or tokens was told (sub only)
    portals = sorted(r["portal"] for r in receiver.received)
    assert portals == ["Hundesteuer", "Wohngeld"]
    hund_item = [r for r in receiver.received if r["portal"] == "Hundesteuer"][0]
    assert logout_claims(provider, hund_item)["sub"] == subs["Hundesteuer"]

    engine = provider.app.extensions["servicekonto.db"].engine
    with provider.app.app_context():
        assert db.session.get(User, user_id) is None
        for model in (Consent, Token):
            assert db.session.scalar(select(func.count()).select_from(model)
                                     .where(model.user_id == user_id)) == 0
        assert db.session.scalar(select(func.count()).select_from(WebSession)
                                 .where(WebSession.user_id == user_id)) == 0
        # audit entries keep the bare number, no users row behind it
        kept = db.session.scalars(select(AuditEvent.tag)
                                  .where(AuditEvent.subject_user_id == user_id)).all()
        assert "account:login:success" in kept and "account:user:deleted" in kept
        seal(engine)
    [deleted] = events(provider.app, "account:user:deleted", user_id)
    assert sorted(deleted["details"]["portals"]) == sorted([hund.client_id, wohn.client_id])
    result = verify(engine)
    assert result.ok, result.reason
    assert result.unsealed == 0


def test_a_reused_id_does_not_inherit_the_deleted_persons_history(app, client):
    """SQLite may hand a deleted account's id to the next account (no AUTOINCREMENT): the
    console shows only entries newer than the account."""
    from tests.console.conftest import login, make_user, post_form

    first = make_user(app)
    login(client, first.email)
    response = post_form(client, "/account/delete", {"current_password": PASSWORD_ACCOUNTS,
                                                     "confirm": "y"})
    assert response.status_code == 200
    second = make_user(app)
    other = app.test_client()
    login(other, second.email)
    history = other.get("/account/sign-ins").get_data(as_text=True)
    assert history.count("<td>Angemeldet</td>") == 1
    data = other.get("/account/data/export.json").get_json()
    assert "account:user:deleted" not in {e["event"] for e in data["audit_events"]}
