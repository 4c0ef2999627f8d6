"""In a real browser: register a passkey in the console, log out, sign in with password +
passkey (Chromium's virtual authenticator over CDP; the page's own passkeys.js does the work)."""

from __future__ import annotations

import re

from tests.passkeys.conftest import PASSWORD, events, make_user, stored, virtual_authenticator

SUBSTANTIAL = "http://eidas.europa.eu/LoA/substantial"


def _password_login(page, base: str, email: str) -> None:  # noqa: ANN001
    page.goto(base + "/login")
    page.get_by_label("E-Mail-Adresse").fill(email)
    page.get_by_label("Passwort", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Anmelden").click()


def test_register_then_sign_in_with_passkey(app, localhost_server, chromium_page):
    page = chromium_page
    base = localhost_server.url
    user = make_user(app)
    virtual_authenticator(page)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    _password_login(page, base, user.email)
    page.wait_for_url(re.compile(r"/account$"))

    # register in the console: name + password, then the browser creates the passkey
    page.goto(base + "/account/security")
    page.get_by_role("link", name="Passkey hinzufügen").click()
    page.get_by_label("Name des Passkeys").fill("Laptop")
    page.get_by_label("Ihr aktuelles Passwort").fill(PASSWORD)
    page.get_by_role("button", name="Weiter").click()
    page.get_by_role("button", name="Passkey jetzt erstellen").click()
    page.get_by_text("Ihr Passkey „Laptop“ wurde hinzugefügt.").wait_for()
    [row] = stored(app, user.id)
    assert row.name == "Laptop" and row.transports == ["internal"]

    # log out, then password + passkey
    page.goto(base + "/logout")
    page.get_by_role("button", name="Ja, abmelden").click()
    _password_login(page, base, user.email)
    page.wait_for_url(re.compile(r"/login/second-factor$"))
    page.get_by_role("button", name="Mit Passkey anmelden").click()
    page.wait_for_url(re.compile(r"/account$"))

    success = events(app, "account:login:success", user.id)[-1]
    assert success["details"]["amr"] == ["pwd", "hwk"]
    assert success["details"]["acr"] == SUBSTANTIAL
    assert stored(app, user.id)[0].last_used_at is not None
    page.goto(base + "/account/sessions")
    assert page.get_by_text("substanziell").count() >= 1
    assert not [e for e in errors if "Content Security Policy" in e], errors
