"""Password reset by e-mail: same answer for every address, single-use links, sessions end."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from servicekonto.accounts.models import EmailToken
from servicekonto.audit import AuditTag
from servicekonto.db import db, utcnow
from tests.accounts.conftest import (
    PASSWORD,
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
from tests.support.mailbox import links_in

NEW_PASSWORD = "Neue Linde am Markt 4"


def request_reset(client, email):
    return submit(client, "/password/forgot", {"email": email})


def reset_link(outbox, email, count=1):
    return path_of(links_in(outbox.wait_for(email, count=count)[-1])[0])


def test_same_answer_for_known_and_unknown_addresses(app, client, outbox):
    user = make_user(app)
    unknown = unique_email("unknown")
    known_page = request_reset(client, user.email)
    unknown_page = request_reset(app.test_client(), unknown)
    assert known_page.status_code == unknown_page.status_code == 200
    assert h1(known_page) == h1(unknown_page) == "Bitte prüfen Sie Ihr E-Mail-Postfach"
    assert (text(known_page).replace(user.email, "E") ==
            text(unknown_page).replace(unknown, "E"))
    assert len(outbox.wait_for(user.email)) == 1
    assert outbox.to(unknown) == []
    assert str(AuditTag.ACCOUNT_PASSWORD_RESET_REQUESTED) in audit_tags(app, user.id)


def test_reset_completes_and_ends_every_session(app, client, outbox):
    user = make_user(app, verified=False)
    elsewhere = app.test_client()
    login(elsewhere, user.email)
    assert elsewhere.get("/account").status_code == 200
    login(client, user.email)

    request_reset(client, user.email)
    link = reset_link(outbox, user.email)
    page = client.get(link)
    assert page.status_code == 200
    inputs = {i.get("name"): i.get("autocomplete") for i in form_of(page)["inputs"]}
    assert inputs["password"] == inputs["password_confirm"] == "new-password"

    done = submit(client, link, {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert done.status_code == 200
    assert h1(done) == "Passwort geändert"
    assert elsewhere.get("/account").status_code == 302
    assert client.get("/account").status_code == 302
    assert get_user(app, user.id).is_verified

    used = client.get(link)
    assert used.status_code == 410
    assert "/password/forgot" in text(used)

    assert login(app.test_client(), user.email, PASSWORD).status_code == 200  # old: wrong
    assert login(app.test_client(), user.email, NEW_PASSWORD).status_code == 302
    tags = audit_tags(app, user.id)
    assert str(AuditTag.ACCOUNT_PASSWORD_RESET_COMPLETED) in tags
    # a notice about the change went to the owner
    assert len(outbox.wait_for(user.email, count=2)) == 2


def test_reset_rejects_weak_passwords_and_keeps_the_link(app, client, outbox):
    user = make_user(app)
    request_reset(client, user.email)
    link = reset_link(outbox, user.email)
    weak = submit(client, link, {"password": "passwort1", "password_confirm": "passwort1"})
    assert weak.status_code == 200
    assert "zu verbreitet" in text(weak)
    done = submit(client, link, {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert h1(done) == "Passwort geändert"


def test_expired_and_forged_reset_links(app, client, outbox):
    user = make_user(app)
    request_reset(client, user.email)
    link = reset_link(outbox, user.email)
    assert client.get(link[:-4] + "AAAA").status_code == 400
    with app.app_context():
        db.session.execute(update(EmailToken).values(expires_at=utcnow() - dt.timedelta(1)))
        db.session.commit()
    expired = client.get(link)
    assert expired.status_code == 410
    assert h1(expired) == "Dieser Link ist abgelaufen"


def test_reset_mails_per_address_are_limited(app, client, outbox):
    user = make_user(app)
    for _ in range(7):
        assert request_reset(client, user.email).status_code == 200
    outbox.wait_for(user.email, count=5)
    assert len(outbox.to(user.email)) == 5


def test_reset_requests_are_limited_per_ip(app, client, outbox):
    app.config["SERVICEKONTO"]["reset_rate_limit"] = "2 per hour"
    assert request_reset(client, unique_email()).status_code == 200
    assert request_reset(client, unique_email()).status_code == 200
    blocked = request_reset(client, unique_email())
    assert blocked.status_code == 429 and blocked.headers["Retry-After"]


def test_invalid_address_is_rejected_with_a_message(client, outbox):
    response = request_reset(client, "erika@")
    assert "Geben Sie eine gültige E-Mail-Adresse ein" in text(response)
