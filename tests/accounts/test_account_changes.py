"""Account page, password change and e-mail change with re-verification."""

from __future__ import annotations

from servicekonto.audit import AuditTag
from tests.accounts.conftest import (
    PASSWORD,
    audit_tags,
    form_of,
    get_user,
    h1,
    login,
    make_user,
    path_of,
    session_cookie,
    text,
    unique_email,
)
from tests.support.forms import submit
from tests.support.mailbox import body_of, links_in

NEW_PASSWORD = "Birkenweg am See 21"


def test_account_page_requires_login_and_shows_the_details(app, client):
    response = client.get("/account")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    user = make_user(app, given_name="Erika", family_name="Mustermann")
    login(client, user.email)
    page = client.get("/account")
    body = text(page)
    assert h1(page) == "Mein Konto"
    assert "Erika Mustermann" in body and user.email in body
    assert "E-Mail-Adresse bestätigt" in body
    assert 'href="/account/password"' in body and 'href="/account/email"' in body
    assert "Bitte bestätigen Sie" not in body


def test_password_change_ends_other_sessions_and_rotates_this_one(app, client, outbox):
    user = make_user(app)
    other = app.test_client()
    login(other, user.email)
    login(client, user.email)
    cookie = session_cookie(client)
    page = client.get("/account/password")
    inputs = {i.get("name"): i.get("autocomplete") for i in form_of(page)["inputs"]}
    assert inputs == {"csrf_token": None, "current_password": "current-password",
                      "password": "new-password", "password_confirm": "new-password"}

    wrong = submit(client, "/account/password", {
        "current_password": "Nicht-das-Passwort", "password": NEW_PASSWORD,
        "password_confirm": NEW_PASSWORD})
    assert "Das aktuelle Passwort ist falsch." in text(wrong)
    common = submit(client, "/account/password", {
        "current_password": PASSWORD, "password": "qwertzuiop", "password_confirm": "qwertzuiop"})
    assert "zu verbreitet" in text(common)

    done = submit(client, "/account/password", {
        "current_password": PASSWORD, "password": NEW_PASSWORD,
        "password_confirm": NEW_PASSWORD})
    assert done.status_code == 302 and done.headers["Location"] == "/account"
    assert session_cookie(client) != cookie
    assert "Ihr Passwort wurde geändert" in text(client.get("/account"))
    assert other.get("/account").status_code == 302
    assert login(app.test_client(), user.email, NEW_PASSWORD).status_code == 302
    assert str(AuditTag.ACCOUNT_PASSWORD_CHANGED) in audit_tags(app, user.id)
    assert "Passwort" in outbox.wait_for(user.email)[0]["Subject"]


def test_email_change_with_reverification(app, client, outbox):
    user = make_user(app)
    new = unique_email("new")
    login(client, user.email)
    page = client.get("/account/email")
    inputs = {i.get("name"): i.get("autocomplete") for i in form_of(page)["inputs"]}
    assert inputs["email"] == "email" and inputs["current_password"] == "current-password"

    wrong = submit(client, "/account/email", {"email": new, "current_password": "falsch-123"})
    assert "Das aktuelle Passwort ist falsch." in text(wrong)
    same = submit(client, "/account/email", {"email": user.email, "current_password": PASSWORD})
    assert "bereits Ihre E-Mail-Adresse" in text(same)

    sent = submit(client, "/account/email", {"email": new, "current_password": PASSWORD})
    assert sent.status_code == 200 and new in text(sent)
    [confirm] = outbox.wait_for(new)
    [notice] = outbox.wait_for(user.email)
    assert "/password/forgot" in body_of(notice)
    link = path_of(links_in(confirm)[0])
    assert get_user(app, user.id).email == user.email  # nothing changed yet

    page = app.test_client().get(link)  # works in another browser too
    assert page.status_code == 200 and new in text(page)
    done = submit(app.test_client(), link, {})
    assert done.status_code == 200
    assert h1(done) == "E-Mail-Adresse geändert"
    changed = get_user(app, user.id)
    assert changed.email == new and changed.is_verified
    assert app.test_client().get(link).status_code == 410
    assert login(app.test_client(), new).status_code == 302
    tags = audit_tags(app, user.id)
    assert str(AuditTag.ACCOUNT_EMAIL_CHANGE_REQUESTED) in tags
    assert str(AuditTag.ACCOUNT_EMAIL_CHANGED) in tags


def test_email_change_to_a_taken_address_reveals_nothing(app, client, outbox):
    user = make_user(app)
    owner = make_user(app, unique_email("owner"))
    fresh = unique_email("fresh")
    login(client, user.email)
    taken_page = submit(client, "/account/email", {"email": owner.email,
                                                   "current_password": PASSWORD})
    free_page = submit(client, "/account/email", {"email": fresh, "current_password": PASSWORD})
    assert taken_page.status_code == free_page.status_code == 200
    assert text(taken_page).replace(owner.email, "E") == text(free_page).replace(fresh, "E")
    [owner_mail] = outbox.wait_for(owner.email)
    assert not any("/confirm/" in link for link in links_in(owner_mail))
    assert get_user(app, owner.id).email == owner.email


def test_email_change_fails_clearly_when_the_address_got_taken_meanwhile(app, client, outbox):
    user = make_user(app)
    new = unique_email("race")
    login(client, user.email)
    submit(client, "/account/email", {"email": new, "current_password": PASSWORD})
    link = path_of(links_in(outbox.wait_for(new)[0])[0])
    make_user(app, new)
    response = submit(client, link, {})
    assert response.status_code == 409
    assert h1(response) == "E-Mail-Adresse nicht verfügbar"
    assert get_user(app, user.id).email == user.email


def test_overlong_and_invalid_new_address(app, client):
    user = make_user(app)
    login(client, user.email)
    long = submit(client, "/account/email", {"email": "x" * 250 + "@example.de",
                                             "current_password": PASSWORD})
    assert "höchstens 254 Zeichen" in text(long)
    invalid = submit(client, "/account/email", {"email": "erika at example.de",
                                                "current_password": PASSWORD})
    assert "Geben Sie eine gültige E-Mail-Adresse ein" in text(invalid)
