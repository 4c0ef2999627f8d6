"""Adding, listing, renaming passkeys in the console; export and deletion; real verification of
software-authenticator answers by py_webauthn."""

from __future__ import annotations

import json

from sqlalchemy import create_engine

from servicekonto.passkeys import service
from tests.mfa.conftest import recovery_codes_of
from tests.passkeys.conftest import (
    PASSWORD,
    add_passkey,
    confirm_password,
    events,
    make_user,
    post_credential,
    post_form,
    register_options,
    stored,
    text,
)
from tests.support.authenticator import b64url
from tests.support.mailbox import body_of


def test_add_two_passkeys(app, client, citizen, token, outbox):
    page = client.get("/account/security")
    assert page.status_code == 200
    assert "Sie haben noch keinen Passkey hinzugefügt." in text(page)

    first = add_passkey(client, token, "Laptop")
    # the first second factor comes with recovery codes, shown once
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-store"
    assert len(recovery_codes_of(text(first))) == 10
    assert "Ihr Passkey „Laptop“ wurde hinzugefügt." in text(first)
    second = add_passkey(client, token, "  Sicherheitsschlüssel   Arbeit ")
    assert second.status_code == 303
    assert second.headers["Location"] == "/account/security#console-passkey-title"

    rows = stored(app, citizen.id)
    assert [r.name for r in rows] == ["Laptop", "Sicherheitsschlüssel Arbeit"]
    assert [r.credential_id for r in rows] == [b64url(c.id) for c in token.credentials]
    assert rows[0].transports == ["internal"] and rows[0].sign_count == 0
    assert rows[0].aaguid == "00000000-0000-0000-0000-000000000000"
    listing = text(client.get("/account/security"))
    assert "Laptop" in listing and "Sicherheitsschlüssel Arbeit" in listing
    assert "Noch nicht verwendet" in listing

    registered = events(app, "account:passkey:registered", citizen.id)
    assert [e["details"]["passkey"] for e in registered] == [r.id for r in rows]
    assert all(e["details"]["user_verified"] for e in registered)
    [codes] = events(app, "account:recovery_codes:created", citizen.id)
    assert codes["details"]["reason"] == "passkey_enrolled"
    mails = outbox.wait_for(citizen.email, count=2)
    assert "Passkey „Laptop“" in body_of(mails[0])
    assert "Passkey „Sicherheitsschlüssel Arbeit“" in body_of(mails[1])


def test_the_list_is_on_the_security_page(client, citizen):
    response = client.get("/account/passkeys")
    assert response.status_code == 303
    assert response.headers["Location"] == "/account/security#console-passkey-title"
    page = text(client.get("/account/security"))
    assert 'id="console-passkey-title">Passkey</h2>' in page
    assert 'href="/account/passkeys/new"' in page


def test_registration_options(app, client, citizen, token):
    add_passkey(client, token, "Laptop")
    confirm_password(client, "Tablet")
    offered = register_options(client)
    assert offered.headers["Cache-Control"] == "no-store"
    opts = offered.get_json()
    assert opts["rp"] == {"id": "localhost", "name": "Servicekonto"}
    assert opts["user"]["name"] == citizen.email
    assert opts["user"]["id"] != str(citizen.id)
    assert opts["attestation"] == "none"
    assert opts["authenticatorSelection"]["userVerification"] == "preferred"
    assert opts["authenticatorSelection"]["residentKey"] == "preferred"
    # the passkey already registered is excluded (one authenticator, one registration)
    assert [c["id"] for c in opts["excludeCredentials"]] == [
        stored(app, citizen.id)[0].credential_id]


def test_default_name_and_form_errors(app, client, citizen):
    page = text(client.get("/account/passkeys/new"))
    assert 'value="Passkey 1"' in page
    assert 'autocomplete="current-password"' in page

    empty = post_form(client, "/account/passkeys/new", {"name": "  ", "current_password": ""})
    assert empty.status_code == 200
    body = text(empty)
    assert 'class="error-summary"' in body
    assert "Bitte geben Sie dem Passkey einen Namen." in body
    assert "Bitte geben Sie Ihr Passwort ein." in body

    too_long = post_form(client, "/account/passkeys/new",
                         {"name": "x" * 61, "current_password": PASSWORD})
    assert "Verwenden Sie höchstens 60 Zeichen." in text(too_long)
    assert register_options(client).status_code == 403  # nothing was confirmed


def test_wrong_password_allows_no_registration(app, client, citizen, token):
    wrong = confirm_password(client, password="falsch-falsch-falsch")
    assert wrong.status_code == 200
    assert "Das Passwort ist falsch." in text(wrong)
    assert events(app, "account:login:failure", citizen.id)  # the console's re-authentication

    denied = register_options(client)
    assert denied.status_code == 403
    assert denied.get_json()["error"] == "passkey_not_allowed"
    step2 = client.get("/account/passkeys/new/create")
    assert step2.status_code == 303 and step2.headers["Location"] == "/account/passkeys/new"
    assert stored(app, citizen.id) == []


def test_options_need_the_csrf_token(client, citizen):
    confirm_password(client)
    response = client.post("/account/passkeys/new/options",
                           headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_csrf_token"


def test_ticket_expires(app, client, citizen, token, monkeypatch):
    monkeypatch.setattr(service, "TICKET_SECONDS", -1)
    confirm_password(client)
    assert register_options(client).status_code == 403


def test_wrong_origin_is_refused_and_audited(app, client, citizen, token):
    confirm_password(client)
    offered = register_options(client).get_data(as_text=True)
    answer = token.create(offered, origin="https://phishing.example")
    response = post_credential(client, "/account/passkeys/new/create", answer)
    assert response.status_code == 200
    assert "Der Passkey konnte nicht geprüft werden." in text(response)
    assert 'class="error-summary"' in text(response)
    assert stored(app, citizen.id) == []
    [failed] = events(app, "account:passkey:failed", citizen.id)
    assert failed["details"] == {"reason": "invalid", "during": "register"}


def test_wrong_rp_id_is_refused(app, client, citizen, token):
    confirm_password(client)
    offered = register_options(client).get_data(as_text=True)
    post_credential(client, "/account/passkeys/new/create",
                    token.create(offered, rp_id="servicekonto.example"))
    assert stored(app, citizen.id) == []


def test_challenge_is_single_use(app, client, citizen, token):
    confirm_password(client)
    answer = token.create(register_options(client).get_data(as_text=True))
    first = post_credential(client, "/account/passkeys/new/create", answer)
    assert first.status_code == 200 and "Wiederherstellungscodes" in text(first)
    confirm_password(client, "Noch einmal")
    replay = post_credential(client, "/account/passkeys/new/create", answer)
    assert "abgelaufen oder wurde schon verwendet" in text(replay)
    assert len(stored(app, citizen.id)) == 1
    [failed] = events(app, "account:passkey:failed", citizen.id)
    assert failed["details"]["reason"] == "challenge"


def test_challenge_expires(app, client, citizen, token, monkeypatch):
    confirm_password(client)
    monkeypatch.setattr(service, "CHALLENGE_SECONDS", -1)
    answer = token.create(register_options(client).get_data(as_text=True))
    response = post_credential(client, "/account/passkeys/new/create", answer)
    assert "abgelaufen" in text(response)
    assert stored(app, citizen.id) == []


def test_challenge_is_bound_to_the_session(app, client, citizen, token):
    """Options fetched in one browser cannot be answered in another session of the account."""
    confirm_password(client)
    answer = token.create(register_options(client).get_data(as_text=True))
    other = app.test_client()
    from tests.passkeys.conftest import login

    login(other, citizen.email)
    confirm_password(other)
    response = post_credential(other, "/account/passkeys/new/create", answer)
    assert "abgelaufen oder wurde schon verwendet" in text(response)
    assert stored(app, citizen.id) == []


def test_same_authenticator_twice_is_refused(app, client, citizen, token):
    add_passkey(client, token, "Laptop")
    confirm_password(client, "Laptop again")
    offered = register_options(client).get_data(as_text=True)
    response = post_credential(client, "/account/passkeys/new/create",
                               token.create(offered, credential=token.credentials[0]))
    assert "Dieser Passkey ist bereits registriert." in text(response)
    assert len(stored(app, citizen.id)) == 1


def test_without_javascript(app, client, citizen):
    confirm_password(client)
    page = text(client.get("/account/passkeys/new/create"))
    assert "<noscript>" in page and "Passkeys benötigen JavaScript" in page
    assert '<script src="/static/passkeys.js" defer></script>' in page
    response = post_credential(client, "/account/passkeys/new/create", None)
    assert response.status_code == 200
    assert "Ihr Browser hat keinen Passkey gesendet." in text(response)
    assert stored(app, citizen.id) == []


def test_garbage_is_a_clear_error(app, client, citizen):
    for garbage in ("{not json", json.dumps([1, 2]), json.dumps({"id": "x", "response": {}})):
        confirm_password(client)
        register_options(client)
        response = post_credential(client, "/account/passkeys/new/create", garbage)
        assert response.status_code == 200
        assert "Der Passkey konnte nicht geprüft werden." in text(response)
    assert stored(app, citizen.id) == []
    reasons = [e["details"]["reason"] for e in events(app, "account:passkey:failed")]
    assert reasons == ["malformed", "malformed", "invalid"]


def test_rename(app, client, citizen, token):
    add_passkey(client, token, "Laptop")
    [row] = stored(app, citizen.id)
    url = f"/account/passkeys/{row.id}/rename"
    assert 'value="Laptop"' in text(client.get(url))
    empty = post_form(client, url, {"name": ""})
    assert "Bitte geben Sie dem Passkey einen Namen." in text(empty)
    done = post_form(client, url, {"name": "Dienstlaptop"})
    assert done.status_code == 303
    assert stored(app, citizen.id)[0].name == "Dienstlaptop"
    assert post_form(client, url, {"name": "Dienstlaptop"}).status_code == 303  # unchanged
    [renamed] = events(app, "account:passkey:renamed", citizen.id)
    assert renamed["details"] == {"passkey": row.id}  # never the name


def test_passkeys_of_others_are_not_found(app, client, citizen, token):
    add_passkey(client, token, "Laptop")
    [row] = stored(app, citizen.id)
    other = app.test_client()
    from tests.passkeys.conftest import login

    login(other, make_user(app).email)
    assert other.get(f"/account/passkeys/{row.id}/rename").status_code == 404
    assert other.get(f"/account/passkeys/{row.id}/remove").status_code == 404
    assert other.get("/account/passkeys/999999/rename").status_code == 404


def test_pages_need_a_login(client):
    for url in ("/account/passkeys/new", "/account/passkeys/new/create",
                "/account/passkeys/1/rename", "/account/passkeys/1/remove"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_english(client, citizen, token):
    add_passkey(client, token, "Laptop")
    page = text(client.get("/account/security?lang=en"))
    assert "Add a passkey" in page and "Not used yet" in page
    assert "<html lang=\"en\">" in page


def test_export_lists_passkeys_without_key_material(app, client, citizen, token):
    add_passkey(client, token, "Laptop")
    [row] = stored(app, citizen.id)
    data = client.get("/account/data/export.json").get_json()
    [exported] = data["second_factors"]["factors"]
    assert exported["kind"] == "passkey" and exported["name"] == "Laptop"
    assert exported["created_at"] and exported["last_used_at"] is None
    dump = json.dumps(data)
    assert row.credential_id not in dump
    assert "public_key" not in dump


def test_account_deletion_removes_passkeys(app, client, citizen, token):
    add_passkey(client, token, "Laptop")
    response = post_form(client, "/account/delete",
                         {"current_password": PASSWORD, "confirm": "y"})
    assert response.status_code == 200, text(response)
    assert stored(app, citizen.id) == []


def test_migration_matches_the_model(migrated_database):
    """Alembic's 0005 creates exactly the table the model describes."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from servicekonto.db import Base

    engine = create_engine(migrated_database)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert [d for d in diff if "passkeys" in repr(d)] == []


def test_origin_follows_the_issuer(app):
    with app.test_request_context():
        app.config["SERVICEKONTO"]["issuer"] = "https://konto.hessen.example:8443/sk"
        rp = service.relying_party()
    assert (rp.id, rp.origin) == ("konto.hessen.example", "https://konto.hessen.example:8443")
