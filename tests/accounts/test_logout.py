"""Logout: a confirmation page with one POST form, then the session is gone."""

from __future__ import annotations

from servicekonto.audit import AuditTag
from tests.accounts.conftest import audit_tags, form_of, h1, login, make_user, session_cookie, text


def test_logout_confirmation_and_post(app, client):
    user = make_user(app)
    login(client, user.email)
    cookie = session_cookie(client)
    page = client.get("/logout")
    assert page.status_code == 200
    body = text(page)
    assert body.count("<form") == 1
    form = form_of(page)
    assert form["method"].lower() == "post"
    assert len(form["buttons"]) == 1
    assert "Ja, abmelden" in body
    assert 'href="/account"' in body

    done = client.post(form["action"], data=form["fields"])
    assert done.status_code == 200
    assert h1(done) == "Sie wurden abgemeldet"
    assert client.get("/account").status_code == 302
    assert str(AuditTag.ACCOUNT_LOGOUT) in audit_tags(app, user.id)
    # the old cookie does not come back to life
    replay = app.test_client()
    replay.set_cookie("sk_session", cookie)
    assert replay.get("/account").status_code == 302


def test_logout_page_in_english(app, client):
    user = make_user(app)
    login(client, user.email)
    assert "Yes, log out" in text(client.get("/logout?lang=en"))


def test_logout_needs_csrf(app, client):
    user = make_user(app)
    login(client, user.email)
    assert client.post("/logout").status_code == 400
    assert client.get("/account").status_code == 200
