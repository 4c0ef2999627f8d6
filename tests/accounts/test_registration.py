"""Registration and e-mail verification, through HTTP and the real SMTP server."""

from __future__ import annotations

import datetime as dt

from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select, update

from servicekonto.accounts.models import EmailToken, User
from servicekonto.audit import AuditTag
from servicekonto.db import db, utcnow
from tests.accounts.conftest import (
    PASSWORD,
    audit_events,
    audit_tags,
    form_of,
    get_user,
    h1,
    login,
    make_user,
    path_of,
    text,
    unique_email,
)
from tests.support.forms import submit
from tests.support.mailbox import body_of, links_in


def register(client, email, password=PASSWORD, **extra):
    data = {"email": email, "password": password, "password_confirm": password,
            "given_name": "Erika", "family_name": "Mustermann", **extra}
    return submit(client, "/register", data)


def find_user(app, email):
    with app.app_context():
        return db.session.scalar(select(User).where(User.email == email))


def test_register_page_uses_the_contract_autocomplete_values(client):
    form = form_of(client.get("/register"))
    autocomplete = {i.get("name"): i.get("autocomplete") for i in form["inputs"]}
    assert autocomplete["email"] == "email"
    assert autocomplete["given_name"] == "given-name"
    assert autocomplete["family_name"] == "family-name"
    assert autocomplete["password"] == "new-password"
    assert autocomplete["password_confirm"] == "new-password"
    assert form["method"].lower() == "post"


def test_registration_sends_a_link_that_verifies_once(app, client, outbox):
    email = unique_email()
    response = register(client, email)
    assert response.status_code == 200
    assert h1(response) == "Bitte prüfen Sie Ihr E-Mail-Postfach"
    user = find_user(app, email)
    assert user is not None and not user.is_verified

    mail = outbox.wait_for(email)[0]
    assert "bestätigen" in mail["Subject"].lower()
    [link] = links_in(mail)
    assert link.startswith("http://localhost/verify/")

    confirmed = client.get(path_of(link))
    assert confirmed.status_code == 200
    assert h1(confirmed) == "E-Mail-Adresse bestätigt"
    assert get_user(app, user.id).is_verified

    again = client.get(path_of(link))
    assert again.status_code == 410
    assert h1(again) == "Dieser Link wurde bereits verwendet"
    assert "Neuen Bestätigungslink anfordern" in text(again)

    tags = audit_tags(app, user.id)
    assert str(AuditTag.ACCOUNT_REGISTRATION_CREATED) in tags
    assert str(AuditTag.ACCOUNT_EMAIL_VERIFIED) in tags
    with app.app_context():
        stored = db.session.scalars(select(EmailToken)).all()
    token = path_of(link).rsplit("/", 1)[1]
    assert all(t.nonce_hash != token and len(t.nonce_hash) == 64 for t in stored)


def test_expired_verification_link_says_so(app, client, outbox):
    email = unique_email()
    register(client, email)
    [link] = links_in(outbox.wait_for(email)[0])
    with app.app_context():
        db.session.execute(update(EmailToken).values(
            expires_at=utcnow() - dt.timedelta(minutes=1)))
        db.session.commit()
    response = client.get(path_of(link))
    assert response.status_code == 410
    assert h1(response) == "Dieser Link ist abgelaufen"
    assert 'href="/account"' in text(response)
    assert not find_user(app, email).is_verified


def test_forged_links_are_invalid(app, client, outbox):
    email = unique_email()
    register(client, email)
    [link] = links_in(outbox.wait_for(email)[0])
    token = path_of(link).rsplit("/", 1)[1]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    wrong_key = URLSafeTimedSerializer("another-secret", salt="verify_email").dumps("x" * 43)
    with app.app_context():
        unknown_nonce = URLSafeTimedSerializer(
            app.config["SECRET_KEY"], salt="verify_email").dumps("not-a-stored-nonce")
        other_purpose = URLSafeTimedSerializer(
            app.config["SECRET_KEY"], salt="reset_password").dumps("whatever")
    for bad in (tampered, wrong_key, unknown_nonce, other_purpose, "x", "a" * 600):
        response = client.get(f"/verify/{bad}")
        assert response.status_code == 400, bad
        assert h1(response) == "Dieser Link ist ungültig"
    assert not find_user(app, email).is_verified
    # the genuine link still works afterwards
    assert client.get(path_of(link)).status_code == 200


def test_duplicate_registration_looks_the_same_and_tells_the_owner(app, client, outbox):
    owner = make_user(app, unique_email("owner"))
    fresh = unique_email("fresh")
    first = register(client, fresh)
    second = register(app.test_client(), owner.email.upper())
    assert first.status_code == second.status_code == 200
    assert h1(first) == h1(second)
    normalise = lambda r, e: text(r).replace(e, "EMAIL")  # noqa: E731
    assert normalise(first, fresh) == normalise(second, owner.email)

    [notice] = outbox.wait_for(owner.email)
    assert "Registrierungsversuch" in notice["Subject"]
    assert "/password/forgot" in body_of(notice)
    assert not any("/verify/" in link for link in links_in(notice))
    with app.app_context():
        assert db.session.scalar(select(User.id).where(User.email == owner.email)) == owner.id
        assert len(db.session.scalars(select(User)).all()) == 2
    assert str(AuditTag.ACCOUNT_REGISTRATION_DUPLICATE) in audit_tags(app, owner.id)


def test_invalid_and_overlong_input_is_rejected(app, client, outbox):
    response = register(client, "not-an-address")
    assert response.status_code == 200
    body = text(response)
    assert "Geben Sie eine gültige E-Mail-Adresse ein" in body
    assert 'class="error-summary"' in body
    assert 'aria-invalid="true"' in body

    long_email = "a" * 250 + "@example.de"
    response = register(client, long_email, given_name="E" * 101, family_name="M" * 101)
    body = text(response)
    assert "höchstens 254 Zeichen" in body
    assert "höchstens 100 Zeichen" in body
    with app.app_context():
        assert db.session.scalars(select(User)).all() == []
    assert outbox.messages == []


def test_weak_passwords_are_rejected_next_to_the_field_and_in_the_summary(app, client):
    email = unique_email()
    for weak, message in [("kurz", "mindestens 10 Zeichen"),
                          ("passwort123", "zu verbreitet"),
                          ("sommer2024!", "zu verbreitet"),
                          ("Mustermann-Erika", "Namen")]:
        response = register(client, email, password=weak)
        body = text(response)
        assert message in body, weak
        assert 'id="password-error"' in body
        assert '<a href="#password">' in body
    mismatch = submit(client, "/register", {
        "email": email, "password": PASSWORD, "password_confirm": PASSWORD + "x",
        "given_name": "Erika", "family_name": "Mustermann"})
    assert "stimmen nicht überein" in text(mismatch)
    assert find_user(app, email) is None


def test_unverified_account_logs_in_and_can_resend_the_link(app, client, outbox):
    email = unique_email()
    register(client, email)
    outbox.wait_for(email)
    response = login(client, email)
    assert response.status_code == 302
    page = client.get("/account")
    assert page.status_code == 200
    assert "Bitte bestätigen Sie Ihre E-Mail-Adresse" in text(page)
    resend = [f for f in parse_all(page) if f["action"] == "/account/verification"][0]
    client.post(resend["action"], data=resend["fields"])
    mails = outbox.wait_for(email, count=2)
    link = links_in(mails[-1])[0]
    assert client.get(path_of(link)).status_code == 200
    assert "Bitte bestätigen Sie" not in text(client.get("/account"))


def parse_all(response):
    from tests.support.forms import parse_forms

    return parse_forms(text(response))


def test_registration_is_rate_limited_per_ip(app, client, outbox):
    app.config["SERVICEKONTO"]["registration_rate_limit"] = "2 per hour"
    assert register(client, unique_email()).status_code == 200
    assert register(client, unique_email()).status_code == 200
    blocked = register(client, unique_email())
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0


def test_audit_details_hold_no_secrets(app, client, outbox):
    email = unique_email()
    register(client, email)
    [link] = links_in(outbox.wait_for(email)[0])
    client.get(path_of(link))
    login(client, email, "wrong password 1")
    token = path_of(link).rsplit("/", 1)[1]
    for event in audit_events(app):
        for secret in (email, PASSWORD, token, "wrong password 1"):
            assert secret not in event.details
