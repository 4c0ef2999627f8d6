"""Login, session rotation, safe redirects, no enumeration, throttling and rehashing."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from servicekonto import create_app
from servicekonto.accounts.models import User
from servicekonto.accounts.services import set_disabled
from servicekonto.audit import AuditTag
from servicekonto.audit.models import AuditEvent
from servicekonto.db import db
from tests.accounts.conftest import (
    PASSWORD,
    audit_tags,
    form_of,
    h1,
    login,
    make_user,
    session_cookie,
    text,
    unique_email,
)
from tests.conftest import base_settings
from tests.support.forms import csrf_token
from tests.support.mailbox import body_of


def test_login_page_has_one_form_with_the_contract_fields(client):
    page = client.get("/login")
    assert page.status_code == 200
    forms = re.findall(r"<form\b", text(page))
    assert len(forms) == 1
    form = form_of(page)
    inputs = {i.get("name"): i for i in form["inputs"]}
    assert inputs["email"]["autocomplete"] == "username"
    assert inputs["email"]["type"] in ("email", "text")
    assert inputs["password"]["autocomplete"] == "current-password"
    assert inputs["password"]["type"] == "password"
    assert len(form["buttons"]) == 1
    assert "<script" not in text(page) and "style=" not in text(page)


def test_login_rotates_the_session_and_establishes_auth(app, client):
    user = make_user(app)
    client.get("/login")
    before = session_cookie(client)
    assert before  # the CSRF token lives in the server-side session
    response = login(client, user.email)
    assert response.status_code == 302
    assert response.headers["Location"] == "/account"
    after = session_cookie(client)
    assert after and after != before
    with client.session_transaction() as sess:
        auth = sess["auth"]
        assert auth["amr"] == ["pwd"] and auth["acr"].endswith("/LoA/low") and auth["sid"]
    page = client.get("/account")
    assert page.status_code == 200
    assert user.email in text(page)
    assert str(AuditTag.ACCOUNT_LOGIN_SUCCESS) in audit_tags(app, user.id)
    # the old session id is worthless now
    other = app.test_client()
    other.set_cookie("sk_session", before)
    assert other.get("/account").status_code == 302


def test_wrong_password_and_unknown_email_look_the_same(app, client):
    user = make_user(app)
    wrong = login(client, user.email, "Falsches-Passwort-9")
    unknown_email = unique_email("nobody")
    unknown = login(app.test_client(), unknown_email, "Falsches-Passwort-9")
    assert wrong.status_code == unknown.status_code == 200
    assert "Die E-Mail-Adresse oder das Passwort ist falsch." in text(wrong)

    def normalise(response, email):
        body = text(response).replace(email, "EMAIL")
        return re.sub(r'name="csrf_token"[^>]* value="[^"]+"', "CSRF", body)

    assert normalise(wrong, user.email) == normalise(unknown, unknown_email)
    assert audit_tags(app, user.id).count(str(AuditTag.ACCOUNT_LOGIN_FAILURE)) == 1


def test_disabled_account_is_refused_like_a_wrong_password(app, client):
    user = make_user(app)
    with app.app_context():
        set_disabled(db.session, db.session.get(User, user.id), True, actor="test")
        db.session.commit()
    response = login(client, user.email)
    assert response.status_code == 200
    assert "Die E-Mail-Adresse oder das Passwort ist falsch." in text(response)
    assert client.get("/account").status_code == 302


@pytest.mark.parametrize("target,expected", [
    ("/account?tab=1", "/account?tab=1"),
    ("/authorize?client_id=x&scope=openid", "/authorize?client_id=x&scope=openid"),
    ("//evil.example/steal", "/account"),
    ("/\\evil.example", "/account"),
    ("https://evil.example/", "/account"),
    ("javascript:alert(1)", "/account"),
    ("account", "/account"),
])
def test_next_only_redirects_within_the_site(app, client, target, expected):
    user = make_user(app)
    from urllib.parse import quote

    response = login(client, user.email, url=f"/login?next={quote(target, safe='')}")
    assert response.status_code == 302
    assert response.headers["Location"] == expected


def test_login_hint_prefills_and_logged_in_users_are_sent_on(app, client):
    user = make_user(app)
    page = client.get(f"/login?login_hint={user.email}")
    assert form_of(page)["fields"]["email"] == user.email
    login(client, user.email)
    again = client.get("/login?next=/account%3Fx%3D1")
    assert again.status_code == 302 and again.headers["Location"] == "/account?x=1"


def test_reauth_shows_the_form_and_establishes_a_fresh_login(app, client):
    user = make_user(app)
    login(client, user.email)
    with client.session_transaction() as sess:
        first_sid = sess["auth"]["sid"]
    cookie = session_cookie(client)
    page = client.get("/login?reauth=1&next=/account")
    assert page.status_code == 200
    assert form_of(page)["fields"]["email"] == user.email
    assert "geben Sie Ihr Passwort erneut ein" in text(page)
    response = login(client, user.email, url="/login?reauth=1&next=/account")
    assert response.status_code == 302
    with client.session_transaction() as sess:
        assert sess["auth"]["sid"] != first_sid
    assert session_cookie(client) != cookie


@pytest.fixture
def strict(app):
    app.config["SERVICEKONTO"].update(login_account_failures=3, login_account_window_minutes=15)
    return app


def test_account_lockout_sends_one_mail_and_answers_429(strict, client, outbox):
    app = strict
    user = make_user(app)
    assert login(client, user.email, "wrong-1-password").status_code == 200
    assert login(client, user.email, "wrong-2-password").status_code == 200
    locked = login(client, user.email, "wrong-3-password")
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert "versuchen Sie es bitte in 15 Minuten erneut" in text(locked)
    # even the right password is refused while locked, and no more mails go out
    for password in ("wrong-4-password", PASSWORD):
        again = login(client, user.email, password)
        assert again.status_code == 429
    assert client.get("/account").status_code == 302
    mails = outbox.wait_for(user.email)
    assert len(outbox.to(user.email)) == 1
    assert "gesperrt" in mails[0]["Subject"]
    assert "/password/forgot" in body_of(mails[0])
    assert audit_tags(app, user.id).count(str(AuditTag.ACCOUNT_LOGIN_LOCKED)) == 1


def test_unknown_addresses_are_locked_too(strict, client, outbox):
    email = unique_email("ghost")
    statuses = [login(client, email, f"wrong-{i}-password").status_code for i in range(4)]
    assert statuses == [200, 200, 429, 429]
    assert outbox.to(email) == []


def test_successful_logins_are_not_throttled_and_clear_the_counter(strict, outbox):
    app = strict
    user = make_user(app)
    for _ in range(6):
        client = app.test_client()
        assert login(client, user.email).status_code == 302
    client = app.test_client()
    for _ in range(2):
        assert login(client, user.email, "wrong-password-x").status_code == 200
    assert login(client, user.email).status_code == 302
    client = app.test_client()
    for _ in range(2):
        assert login(client, user.email, "wrong-password-y").status_code == 200
    assert login(client, user.email).status_code == 302
    assert outbox.to(user.email) == []


def test_per_ip_limit(app, client):
    app.config["SERVICEKONTO"].update(login_ip_failures=3)
    statuses = [login(client, unique_email(), "wrong-password-z").status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]


def test_password_is_rehashed_when_the_parameters_rise(app, migrated_database, tmp_path, mailbox):
    user = make_user(app)  # hashed with the cheap parameters of this module's app
    with app.app_context():
        old_hash = db.session.get(User, user.id).password_hash
    assert "m=1024" in old_hash
    stronger = create_app({**base_settings(migrated_database, tmp_path / "strong", mailbox),
                           "argon2_memory_kib": 8192, "argon2_time_cost": 2})
    try:
        client = stronger.test_client()
        assert login(client, user.email).status_code == 302
        with stronger.app_context():
            new_hash = db.session.scalar(select(User.password_hash).where(User.id == user.id))
        assert new_hash != old_hash and "m=8192" in new_hash and "t=2" in new_hash
        tags = audit_tags(app, user.id)
        assert tags[-2:] == [str(AuditTag.ACCOUNT_PASSWORD_REHASHED),
                             str(AuditTag.ACCOUNT_LOGIN_SUCCESS)]  # the order of the entries
        # and the new hash works
        assert login(stronger.test_client(), user.email).status_code == 302
        assert audit_tags(app, user.id).count(str(AuditTag.ACCOUNT_PASSWORD_REHASHED)) == 1
    finally:
        stronger.extensions["servicekonto.db"].dispose()


def test_the_hash_runs_outside_any_database_transaction(app, client, monkeypatch):
    """The Argon2id verify (and a wait for its slot) holds no pooled connection."""
    from servicekonto.accounts import passwords

    user = make_user(app)
    seen: list[bool] = []
    real = passwords.verify_password

    def watching(password_hash: str, password: str) -> bool:
        seen.append(db.session.in_transaction())
        return real(password_hash, password)

    monkeypatch.setattr(passwords, "verify_password", watching)
    client.get("/login")
    assert login(client, user.email).status_code == 302
    assert login(app.test_client(), user.email, "wrong-password-x").status_code == 200
    assert seen == [False, False]


def test_authenticate_never_commits_pending_changes_of_the_caller(app):
    """The early hand-back of the connection applies only to a fresh unit of work."""
    from servicekonto.accounts import authentication

    user = make_user(app)
    stranger = unique_email("pending")
    with app.test_request_context("/login", method="POST"):
        db.session.add(User(email=stranger, password_hash="x", given_name="P",
                            family_name="Q", locale="de"))
        result = authentication.authenticate(db.session, user.email, PASSWORD, ip="127.0.0.1")
        assert result.user.id == user.id
        db.session.rollback()
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == stranger)) is None


def test_successful_login_writes_the_same_audit_entry(app, client):
    user = make_user(app)
    client.get("/login")
    assert login(client, user.email).status_code == 302
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(
            AuditEvent.subject_user_id == user.id).order_by(AuditEvent.id.desc())).first()
        assert event is not None
        assert (event.tag, event.actor, event.details, event.ip) == (
            str(AuditTag.ACCOUNT_LOGIN_SUCCESS), f"citizen:{user.id}", '{"amr":["pwd"]}',
            "127.0.0.1")
        assert event.occurred_at is not None and event.user_agent_hash


def test_missing_or_forged_csrf_token_gives_the_400_page(app, client):
    user = make_user(app)
    missing = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert missing.status_code == 400
    assert "<h1>" in text(missing)
    token = csrf_token(text(client.get("/login")))
    forged = client.post("/login", data={"email": user.email, "password": PASSWORD,
                                         "csrf_token": token[:-3] + "abc"})
    assert forged.status_code == 400
    assert client.get("/account").status_code == 302


def test_german_by_default_english_on_request(client):
    german = client.get("/login")
    assert 'lang="de"' in text(german)
    assert h1(german) == "Anmelden"
    english = client.get("/login?lang=en")
    assert 'lang="en"' in text(english)
    assert h1(english) == "Log in"
    assert h1(client.get("/register")) == "Create an account"  # remembered


def test_an_expired_session_sends_the_citizen_to_login_with_a_notice(app, client):
    import datetime as dt

    from servicekonto.sessions.interface import hash_token

    user = make_user(app)
    login(client, user.email)
    store = app.extensions["servicekonto.session_store"]
    record = store.load(hash_token(session_cookie(client)))
    record.last_seen_at -= dt.timedelta(minutes=61)  # past the basic level's 60 min idle limit
    store.save(record)

    response = client.get("/account")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?")
    assert "next=/account" in response.headers["Location"]
    assert "expired=1" in response.headers["Location"]
    page = client.get(response.headers["Location"])
    assert "Ihre Sitzung ist abgelaufen" in text(page)
    assert store.load(record.key) is None
