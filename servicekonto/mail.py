"""Outgoing mail: real SMTP, or a local folder when no SMTP server is configured (development).

Mail bodies are rendered from ``templates/mail/<name>.txt`` in the recipient's language.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from flask import render_template
from flask_babel import force_locale

from servicekonto.settings import current_settings

log = logging.getLogger(__name__)


class MailError(Exception):
    """The mail could not be handed to the SMTP server."""


def build_message(to: str, subject: str, body: str, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].strip("> "))
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    return message


def send_template(to: str, template: str, locale: str, **context: Any) -> None:
    """Render ``mail/<template>.txt`` (first line ``Subject: ...``) and send it."""
    with force_locale(locale):
        rendered = render_template(f"mail/{template}.txt", **context)
    first, _, body = rendered.lstrip().partition("\n")
    subject = first.removeprefix("Subject:").strip()
    send(to, subject, body.lstrip("\n"))


def send(to: str, subject: str, body: str) -> None:
    settings = current_settings()
    message = build_message(to, subject, body, settings["mail_from"])
    if not settings["mail_smtp_host"]:
        _write_to_outbox(message, Path(settings["mail_outbox_dir"]))
        return
    try:
        _send_smtp(message, settings)
    except (OSError, smtplib.SMTPException) as exc:
        log.error("mail delivery failed: %s", type(exc).__name__)
        raise MailError(str(exc)) from exc


def _send_smtp(message: EmailMessage, settings: dict[str, Any]) -> None:
    host, port = settings["mail_smtp_host"], settings["mail_smtp_port"]
    timeout = settings["mail_smtp_timeout_seconds"]
    context = ssl.create_default_context()
    if settings["mail_smtp_ssl"]:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        if settings["mail_smtp_starttls"] and not settings["mail_smtp_ssl"]:
            smtp.starttls(context=context)
        if settings["mail_smtp_username"]:
            smtp.login(settings["mail_smtp_username"], settings["mail_smtp_password"])
        smtp.send_message(message)


def _write_to_outbox(message: EmailMessage, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.time_ns()}.eml"
    path.write_bytes(bytes(message))
    # Development only: show where the mail went and the links it holds.
    links = re.findall(r"https?://\S+", message.get_content())
    log.warning("mail to %s written to %s %s", message["To"], path,
                ("links: " + " ".join(links)) if links else "")
