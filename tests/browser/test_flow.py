"""A citizen's whole journey in a real browser: register, confirm the e-mail, sign in at one demo
portal, single sign-on at the other, withdraw a consent, sign out everywhere."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import assert_accessible, screenshot
from tests.browser.flows import (
    confirm,
    consent,
    expect_heading,
    log_in,
    open_mail_link,
    portal_claim,
    portal_sign_in,
    register,
)

EMAIL = "erika.mustermann@example.de"
PASSWORD = "Heidestrasse-17-Musterstadt"


def wait_backchannel(app) -> None:  # noqa: ANN001
    assert app.extensions["servicekonto.backchannel"].wait(20)


def expect_portal_signed_out(page: Page, portal_url: str) -> None:
    """Reloading the portal's start page shows the sign-in button again (server-side session
    ended by the back-channel logout)."""
    page.goto(portal_url + "/")
    expect(page.get_by_role("link", name="Mit Servicekonto anmelden")).to_be_visible()
    expect(page.get_by_text("Sie sind angemeldet")).to_have_count(0)


@pytest.mark.screenshots
def test_registration_sso_withdrawal_and_sign_out_everywhere(app, live_server, portals, outbox,
                                                             page: Page):
    base = live_server.url
    hund, wohn = portals["hundesteuer"], portals["wohngeld"]

    # 1. registration, then the link from the mail
    page.goto(base + "/register")
    expect_heading(page, "Konto erstellen")
    screenshot(page, "registration")
    register(page, base, EMAIL, PASSWORD)
    expect_heading(page, "Bitte prüfen Sie Ihr E-Mail-Postfach")
    expect(page.locator("main")).to_contain_text(EMAIL)
    assert_accessible(page)
    link = open_mail_link(page, outbox, EMAIL, "/verify/")
    assert link.startswith(base + "/verify/")
    expect_heading(page, "E-Mail-Adresse bestätigt")

    # 2. sign in at the first portal: the provider's login, then its consent page
    page.goto(hund.url + "/")
    assert_accessible(page)
    portal_sign_in(page, hund.url)
    assert page.url.startswith(base + "/login")
    expect_heading(page, "Anmelden")
    screenshot(page, "login")
    log_in(page, EMAIL, PASSWORD)
    expect_heading(page, "Daten an Hundesteuer Musterstadt übermitteln?")
    expect(page.locator(".consent-data")).to_contain_text("E-Mail-Adresse")
    assert_accessible(page)
    screenshot(page, "consent")
    consent(page)
    assert page.url == hund.url + "/meine-daten"
    expect_heading(page, "Meine Daten")
    assert portal_claim(page, "given_name") == "Erika"
    assert portal_claim(page, "family_name") == "Mustermann"
    assert portal_claim(page, "email") == EMAIL
    assert portal_claim(page, "acr") == "http://eidas.europa.eu/LoA/low"
    assert_accessible(page)  # the demo portal too: it is what operators copy
    screenshot(page, "portal-signed-in")

    # 3. the second portal: no password again, only its own consent
    portal_sign_in(page, wohn.url)
    expect_heading(page, "Daten an Wohngeld Hessen übermitteln?")
    consent(page)
    assert page.url == wohn.url + "/meine-daten"
    assert portal_claim(page, "given_name") == "Erika"
    assert portal_claim(page, "sid")  # the ID token names the provider session

    # 4. the console lists both portals; withdrawing the first one's consent signs it out
    page.goto(base + "/account/portals")
    expect_heading(page, "Verbundene Portale")
    expect(page.locator("main h2")).to_have_text(["Wohngeld Hessen", "Hundesteuer Musterstadt"])
    screenshot(page, "console-portals")
    section = page.get_by_role("region", name="Hundesteuer Musterstadt")
    section.get_by_role("link", name="Gesamte Einwilligung für dieses Portal widerrufen").click()
    expect_heading(page, "Einwilligung widerrufen")
    expect(page.locator("main")).to_contain_text("Hundesteuer Musterstadt")
    confirm(page)
    expect(page.locator("main h2")).to_have_text(["Wohngeld Hessen"])
    wait_backchannel(app)
    expect_portal_signed_out(page, hund.url)
    page.goto(wohn.url + "/")
    expect(page.get_by_text("Sie sind angemeldet als")).to_be_visible()

    # 5. sign out everywhere from the console: the second portal is signed out as well
    page.goto(base + "/account/sessions")
    expect_heading(page, "Aktive Sitzungen")
    screenshot(page, "console-sessions")
    page.get_by_role("link", name="Überall abmelden").click()
    expect_heading(page, "Überall abmelden")
    confirm(page)
    expect_heading(page, "Abgemeldet")
    assert_accessible(page)
    wait_backchannel(app)
    expect_portal_signed_out(page, wohn.url)
    expect_portal_signed_out(page, hund.url)

    # and the provider asks for the password again
    page.goto(base + "/account")
    assert re.match(re.escape(base) + r"/login", page.url)
