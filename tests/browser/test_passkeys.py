"""Passkeys in a real browser: register one in the console, log out, sign in with password +
passkey. Chromium's virtual authenticator (flows.virtual_authenticator, CDP) stands in for the
device; the page's own passkeys.js does the work, under the pages' Content-Security-Policy."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import assert_accessible
from tests.browser.flows import (
    add_passkey,
    confirm,
    expect_heading,
    log_in,
    passkey_second_factor,
    virtual_authenticator,
)
from tests.passkeys.conftest import PASSWORD, events, make_user, stored

SUBSTANTIAL = "http://eidas.europa.eu/LoA/substantial"


def test_register_then_sign_in_with_passkey(app, live_server, page: Page):
    base = live_server.url
    user = make_user(app)
    virtual_authenticator(page)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    page.goto(base + "/login")
    log_in(page, user.email, PASSWORD)
    assert page.url == base + "/account"

    # register in the console: name + password, then the browser creates the passkey
    add_passkey(page, base, "Laptop", PASSWORD)
    expect(page.get_by_text("Ihr Passkey „Laptop“ wurde hinzugefügt.")).to_be_visible()
    expect_heading(page, "Ihre Wiederherstellungscodes")  # the first factor brings ten codes
    expect(page.locator(".recovery-codes code")).to_have_count(10)
    page.get_by_role("link", name="Ich habe die Codes gesichert").click()
    expect_heading(page, "Anmeldesicherheit")
    expect(page.locator("main table")).to_contain_text("Laptop")
    [row] = stored(app, user.id)
    assert row.name == "Laptop" and row.transports == ["internal"]

    # log out, then password + passkey
    page.goto(base + "/logout")
    confirm(page)
    page.goto(base + "/login")
    log_in(page, user.email, PASSWORD)
    assert re.search(r"/login/second-factor$", page.url)
    expect_heading(page, "Zweiter Schritt Ihrer Anmeldung")
    assert_accessible(page)
    passkey_second_factor(page)
    assert page.url == base + "/account"

    success = events(app, "account:login:success", user.id)[-1]
    assert success["details"]["amr"] == ["pwd", "hwk"]
    assert success["details"]["acr"] == SUBSTANTIAL
    assert stored(app, user.id)[0].last_used_at is not None
    page.goto(base + "/account/sessions")
    expect(page.get_by_text("substanziell").first).to_be_visible()
    assert not [e for e in errors if "Content Security Policy" in e], errors
