"""Outgoing mail: real SMTP (aiosmtpd in the test process), the development outbox, failures."""

from __future__ import annotations

import email
import email.policy

import pytest

from servicekonto.mail import MailError, build_message, send
from tests.support.mailbox import body_of


def test_build_message_headers():
    message = build_message("erika@example.org", "Betreff äöü", "Hallo\n",
                            "Servicekonto <no-reply@konto.example>")
    assert message["To"] == "erika@example.org"
    assert message["Subject"] == "Betreff äöü"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@konto.example>")
    assert message["Date"]


def test_send_over_smtp(app, outbox):
    with app.app_context():
        send("erika@example.org", "Willkommen", "Ihr Link: https://konto.example/x\n")
    [message] = outbox.wait_for("erika@example.org")
    assert message["Subject"] == "Willkommen"
    assert "https://konto.example/x" in body_of(message)


@pytest.mark.parametrize("settings_overrides", [{"mail_smtp_host": ""}])
def test_outbox_folder_without_smtp(app, tmp_path, caplog):
    with app.app_context():
        send("max@example.org", "Test", "Link: https://konto.example/verify/abc\n")
    folder = tmp_path / "instance" / "mail"
    [path] = list(folder.glob("*.eml"))
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["To"] == "max@example.org"
    assert "https://konto.example/verify/abc" in caplog.text  # development: the link is logged


@pytest.mark.parametrize("settings_overrides", [{"mail_smtp_port": 1,
                                                 "mail_smtp_timeout_seconds": 2}])
def test_unreachable_smtp_raises_mail_error(app):
    with app.app_context(), pytest.raises(MailError):
        send("erika@example.org", "Test", "x\n")
