"""Mail failures keep committed data; counters shared through Redis across app instances."""

from __future__ import annotations

import secrets
import socket

import pytest
from sqlalchemy import select

from servicekonto import create_app
from servicekonto.accounts.models import User
from servicekonto.audit import AuditTag
from servicekonto.db import db
from tests.accounts.conftest import PASSWORD, audit_tags, h1, login, make_user, text, unique_email
from tests.conftest import base_settings
from tests.support.forms import submit


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_registration_survives_an_smtp_failure(app, client, outbox, caplog):
    app.config["SERVICEKONTO"]["mail_smtp_port"] = _closed_port()
    email = unique_email()
    response = submit(client, "/register", {
        "email": email, "password": PASSWORD, "password_confirm": PASSWORD,
        "given_name": "Erika", "family_name": "Mustermann"})
    assert response.status_code == 200
    assert h1(response) == "Bitte prüfen Sie Ihr E-Mail-Postfach"
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == email))
    assert user is not None
    assert "could not send the verify_email mail" in caplog.text
    # once mail works again, the citizen logs in and asks for a new link
    app.config["SERVICEKONTO"]["mail_smtp_port"] = outbox.port
    login(client, email)
    page = client.get("/account")
    resend = submit(client, "/account", {}, form_index=0)
    assert resend.status_code == 302
    assert "Bitte bestätigen Sie" in text(page)
    outbox.wait_for(email)
    assert str(AuditTag.ACCOUNT_VERIFICATION_RESENT) in audit_tags(app, user.id)


def test_reset_request_answers_the_same_when_smtp_fails(app, client, outbox):
    user = make_user(app)
    app.config["SERVICEKONTO"]["mail_smtp_port"] = _closed_port()
    response = submit(client, "/password/forgot", {"email": user.email})
    assert response.status_code == 200
    assert h1(response) == "Bitte prüfen Sie Ihr E-Mail-Postfach"
    assert str(AuditTag.ACCOUNT_PASSWORD_RESET_REQUESTED) in audit_tags(app, user.id)


@pytest.mark.redis
def test_lockout_is_shared_between_instances_through_redis(app, migrated_database, tmp_path,
                                                          mailbox, redis_url):
    user = make_user(app)
    settings = {**base_settings(migrated_database, tmp_path / "r", mailbox),
                "redis_url": redis_url, "argon2_memory_kib": 1024, "argon2_time_cost": 1,
                "login_account_failures": 2}
    first, second = create_app(settings), create_app(settings)
    # a random client address: counters in the shared Redis never meet another test run's
    ip = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
    try:
        mailbox.clear()
        one, two = first.test_client(), second.test_client()
        one.environ_base["REMOTE_ADDR"] = two.environ_base["REMOTE_ADDR"] = ip
        assert login(one, user.email, "wrong-password-a").status_code == 200
        assert login(two, user.email, "wrong-password-b").status_code == 429
        assert login(one, user.email).status_code == 429
        assert len(mailbox.wait_for(user.email)) == 1
    finally:
        for application in (first, second):
            application.extensions["servicekonto.db"].dispose()
            client = application.extensions["servicekonto.redis"]
            if client is not None:
                client.close()
