"""Signing in with password + passkey (and stepping up with one), counter checks, failures,
and removing passkeys (password, last-factor rule, mail)."""

from __future__ import annotations

import json

import pytest

from tests.oidc.conftest import cli  # noqa: F401 - the console-script fixture
from tests.passkeys.conftest import (
    PASSWORD,
    add_passkey,
    events,
    login,
    options,
    post_credential,
    post_form,
    stored,
    text,
)
from tests.support.authenticator import SoftAuthenticator, b64url
from tests.support.mailbox import body_of

SUBSTANTIAL = "http://eidas.europa.eu/LoA/substantial"


@pytest.fixture
def enrolled(app, client, citizen, token):  # noqa: ANN001, ANN201
    """The citizen with one passkey ("Laptop"), signed in afresh in a second browser up to the
    second-factor step."""
    add_passkey(client, token, "Laptop")
    browser = app.test_client()
    response = login(browser, citizen.email)
    assert response.headers["Location"] == "/login/second-factor"
    return browser


def login_options(browser):  # noqa: ANN001, ANN201
    return options(browser, "/login/second-factor", "/login/passkey/options")


def passkey_step(browser, token, **answer_kwargs):  # noqa: ANN001, ANN201
    offered = login_options(browser)
    assert offered.status_code == 200, offered.get_data(as_text=True)
    answer = token.get(offered.get_data(as_text=True), **answer_kwargs)
    return post_credential(browser, "/login/second-factor", answer)


def auth_of(browser) -> dict | None:  # noqa: ANN001
    with browser.session_transaction() as sess:
        return sess.get("auth")


def test_password_then_passkey(app, citizen, token, enrolled):
    page = text(enrolled.get("/login/second-factor"))
    assert 'data-passkey="login"' in page and "Mit Passkey anmelden" in page
    assert "<noscript>" in page and "Passkeys benötigen JavaScript" in page
    assert auth_of(enrolled) is None  # the password alone logs nobody in

    opts = login_options(enrolled).get_json()
    assert opts["rpId"] == "localhost" and opts["userVerification"] == "preferred"
    assert [c["id"] for c in opts["allowCredentials"]] == [b64url(token.credentials[0].id)]

    done = passkey_step(enrolled, token)
    assert done.status_code == 303 and done.headers["Location"] == "/account"
    auth = auth_of(enrolled)
    assert auth["acr"] == SUBSTANTIAL and auth["amr"] == ["pwd", "hwk"]
    assert enrolled.get("/account").status_code == 200

    [row] = stored(app, citizen.id)
    assert row.sign_count == 1 and row.last_used_at is not None
    [used] = events(app, "account:passkey:used", citizen.id)
    assert used["details"] == {"passkey": row.id, "user_verified": True}
    success = events(app, "account:login:success", citizen.id)[-1]
    assert success["details"]["method"] == "passkey"
    assert success["details"]["amr"] == ["pwd", "hwk"]


def test_resumes_where_the_login_started(app, citizen, token, enrolled):
    browser = app.test_client()
    login(browser, citizen.email, url="/login?next=/account/sessions")
    assert passkey_step(browser, token).headers["Location"] == "/account/sessions"


def test_counter_going_backwards_is_refused_and_audited(app, citizen, token, enrolled):
    assert passkey_step(enrolled, token).status_code == 303  # counter now 1
    again = app.test_client()
    login(again, citizen.email)
    cloned = passkey_step(again, token, sign_count=1)  # a copy still at 1
    assert cloned.status_code == 400
    assert "Signaturzähler ist zurückgegangen" in text(cloned)
    assert 'class="error-summary"' in text(cloned)
    assert auth_of(again) is None
    [failed] = events(app, "account:passkey:failed", citizen.id)
    assert failed["details"]["reason"] == "sign_count"
    assert stored(app, citizen.id)[0].sign_count == 1
    failure = events(app, "account:login:failure", citizen.id)[-1]
    assert failure["details"] == {"reason": "wrong_second_factor", "method": "passkey"}
    # the genuine authenticator (counter 2) still works
    assert passkey_step(again, token).status_code == 303


def test_authenticators_without_a_counter(app, client, citizen):
    token = SoftAuthenticator("http://localhost", counts=False)
    add_passkey(client, token, "Sicherheitsschlüssel")
    for _ in range(2):
        browser = app.test_client()
        login(browser, citizen.email)
        assert passkey_step(browser, token).status_code == 303
    assert stored(app, citizen.id)[0].sign_count == 0


def test_assertion_is_single_use(app, citizen, token, enrolled):
    offered = login_options(enrolled).get_data(as_text=True)
    answer = token.get(offered)
    assert post_credential(enrolled, "/login/second-factor", answer).status_code == 303
    replay = app.test_client()
    login(replay, citizen.email)
    response = post_credential(replay, "/login/second-factor", answer)
    assert response.status_code == 400
    assert "abgelaufen oder wurde schon verwendet" in text(response)
    assert auth_of(replay) is None


def test_bad_signature_and_wrong_origin(app, citizen, token, enrolled):
    offered = login_options(enrolled).get_data(as_text=True)
    answer = token.get(offered)
    answer["response"]["signature"] = b64url(b"\x30\x06\x02\x01\x01\x02\x01\x01")
    response = post_credential(enrolled, "/login/second-factor", answer)
    assert "Der Passkey konnte nicht geprüft werden." in text(response)
    response = passkey_step(enrolled, token, origin="https://servicekonto.example.com")
    assert "Der Passkey konnte nicht geprüft werden." in text(response)
    assert [e["details"]["reason"] for e in events(app, "account:passkey:failed")] == [
        "invalid", "invalid"]
    assert auth_of(enrolled) is None


def test_a_passkey_of_another_account(app, citizen, token, enrolled):
    stranger = SoftAuthenticator("http://localhost")
    offered = login_options(enrolled).get_data(as_text=True)
    stranger.create({"rp": {"id": "localhost"}, "challenge": "AAAA"})
    answer = stranger.get(offered, credential=stranger.credentials[0])
    response = post_credential(enrolled, "/login/second-factor", answer)
    assert "nicht registriert" in text(response)
    [failed] = events(app, "account:passkey:failed", citizen.id)
    assert failed["details"] == {"reason": "unknown", "during": "login"}


def test_without_javascript_the_other_factors_still_work(app, citizen, enrolled):
    response = post_credential(enrolled, "/login/second-factor", None)
    assert response.status_code == 400
    assert "Ihr Browser hat keinen Passkey gesendet." in text(response)
    assert events(app, "account:passkey:failed") == []  # nothing was tried


def test_garbage_is_a_clear_error(app, citizen, enrolled):
    for garbage in ("{", json.dumps({"id": 5}), json.dumps({"id": "abc", "response": 1})):
        login_options(enrolled)
        response = post_credential(enrolled, "/login/second-factor", garbage)
        assert response.status_code == 400
        assert 'class="error-summary"' in text(response)


def test_nothing_without_the_password_step(app, client):
    fresh = app.test_client()
    token = fresh.get("/login")  # a session with a CSRF token
    from tests.support.forms import csrf_token

    denied = fresh.post("/login/passkey/options",
                        headers={"Accept": "application/json",
                                 "X-CSRFToken": csrf_token(text(token))})
    assert denied.status_code == 403 and denied.get_json()["error"] == "passkey_not_allowed"
    response = fresh.post("/login/passkey", data={"csrf_token": csrf_token(text(token)),
                                                  "credential": "{}"})
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_step_up_with_a_passkey(app, client, citizen, token):
    add_passkey(client, token, "Laptop")
    sid = auth_of(client)["sid"]
    started = post_form(client, "/account/security", index=0)
    assert started.headers["Location"] == "/login/second-factor"
    done = passkey_step(client, token)
    assert done.status_code == 303 and done.headers["Location"] == "/account/security"
    auth = auth_of(client)
    assert auth["acr"] == SUBSTANTIAL and auth["amr"] == ["pwd", "hwk"] and auth["sid"] == sid
    [stepped] = events(app, "account:login:stepped_up", citizen.id)
    assert stepped["details"]["method"] == "passkey"


# -- removal -----------------------------------------------------------------------------------

def test_remove_one_of_two(app, client, citizen, token, outbox):
    add_passkey(client, token, "Laptop")
    add_passkey(client, token, "Tablet")
    laptop, tablet = stored(app, citizen.id)
    url = f"/account/passkeys/{laptop.id}/remove"
    page = text(client.get(url))
    assert "Passkey „Laptop“ entfernen" in page and 'autocomplete="current-password"' in page

    wrong = post_form(client, url, {"current_password": "falsch-falsch-falsch"})
    assert "Das Passwort ist falsch." in text(wrong)
    assert len(stored(app, citizen.id)) == 2

    outbox.clear()
    done = post_form(client, url, {"current_password": PASSWORD})
    assert done.status_code == 303
    assert [p.name for p in stored(app, citizen.id)] == ["Tablet"]
    [removed] = events(app, "account:passkey:removed", citizen.id)
    assert removed["details"] == {"passkey": laptop.id, "remaining": 1}
    [mail] = outbox.wait_for(citizen.email)
    assert "Passkey" in body_of(mail)
    security = text(client.get("/account/security"))
    assert "Der Passkey „Laptop“ wurde entfernt." in security
    assert "<td>Laptop</td>" not in security and "<td>Tablet</td>" in security


def test_last_passkey_needs_a_proved_session(app, client, citizen, token):
    add_passkey(client, token, "Laptop")
    [row] = stored(app, citizen.id)
    url = f"/account/passkeys/{row.id}/remove"
    blocked = client.get(url)
    assert "Dies ist Ihr letzter zweiter Faktor." in text(blocked)
    refused = client.post(url, data={"csrf_token": _csrf(client), "current_password": PASSWORD})
    assert refused.status_code == 200
    assert len(stored(app, citizen.id)) == 1

    post_form(client, url, index=0)  # "Confirm with second factor now" (step-up)
    assert passkey_step(client, token).headers["Location"] == url
    done = post_form(client, url, {"current_password": PASSWORD})
    assert done.status_code == 303
    assert stored(app, citizen.id) == []
    # nothing left for recovery codes to replace; the next login needs the password only
    assert _recovery_codes(app, citizen.id) == 0
    browser = app.test_client()
    assert login(browser, citizen.email).headers["Location"] == "/account"


def _csrf(client) -> str:  # noqa: ANN001
    from tests.support.forms import csrf_token

    return csrf_token(text(client.get("/account/passkeys/new")))


def _recovery_codes(app, user_id: int) -> int:  # noqa: ANN001
    from servicekonto.db import db
    from servicekonto.mfa.services import recovery_codes_left

    with app.app_context():
        return recovery_codes_left(db.session, user_id)


def test_administrator_reset_removes_passkeys(app, client, citizen, token, cli):  # noqa: F811
    add_passkey(client, token, "Laptop")
    add_passkey(client, token, "Tablet")
    result = cli("users", "reset-second-factors", citizen.email)
    assert result.returncode == 0, result.stderr
    assert "passkey: 2" in result.stdout
    assert stored(app, citizen.id) == []
    browser = app.test_client()
    assert login(browser, citizen.email).headers["Location"] == "/account"
