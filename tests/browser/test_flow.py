"""A citizen's whole journey in a real browser: register, confirm the e-mail, sign in at one demo
portal, single sign-on at the other, withdraw a consent, sign out everywhere; and (second test)
the second factors: authenticator app set up in the console, step-up to "substantial" at the
Wohngeld portal with a TOTP code, a passkey added and used for the next sign-in, a recovery
code."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import assert_accessible, screenshot
from tests.browser.flows import (
    add_passkey,
    confirm,
    consent,
    enrol_totp,
    expect_heading,
    log_in,
    open_mail_link,
    passkey_second_factor,
    portal_claim,
    portal_sign_in,
    register,
    second_factor,
    submit,
    totp_code,
    virtual_authenticator,
    wrong_totp_code,
)
from tests.demo.conftest import PASSWORD as CITIZEN_PASSWORD
from tests.support.backchannel import wait_for_deliveries

EMAIL = "erika.mustermann@example.de"
PASSWORD = "Heidestrasse-17-Musterstadt"


def wait_backchannel(app) -> None:  # noqa: ANN001
    wait_for_deliveries(app)


def expect_portal_signed_out(page: Page, portal_url: str) -> None:
    """Reloading the portal's start page shows the sign-in button again (server-side session
    ended by the back-channel logout)."""
    page.goto(portal_url + "/")
    expect(page.get_by_role("link", name="Mit Servicekonto anmelden", exact=True)).to_be_visible()
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


# -- second factors: the journey goes on with TOTP and passkey step-up ---------------------------
# (a separate test that starts from a signed-in citizen, so each part fails on its own)

SUBSTANTIAL = "http://eidas.europa.eu/LoA/substantial"


def substantial_sign_in(page: Page, portal_url: str) -> None:
    """At Wohngeld: "Mit Servicekonto anmelden (Vertrauensniveau „substanziell“)"."""
    page.goto(portal_url + "/")
    with page.expect_navigation():
        page.get_by_role("link", name="Mit Servicekonto anmelden (Vertrauensniveau "
                                       "„substanziell“)").click()


def portal_amr(page: Page) -> list[str]:
    return [m.strip() for m in portal_claim(page, "amr").strip("[]").replace("'", "").split(",")]


@pytest.mark.screenshots
def test_totp_and_passkey_step_up_at_the_portal(app, live_server, portals, citizen, page: Page):
    base, wohn = live_server.url, portals["wohngeld"]
    page.goto(base + "/login")
    log_in(page, citizen, CITIZEN_PASSWORD)
    assert page.url == base + "/account"

    # 1. the console's security page: no second factor yet
    page.goto(base + "/account/security")
    expect_heading(page, "Anmeldesicherheit")
    expect(page.locator("main")).to_contain_text("noch keinen zweiten Faktor eingerichtet")

    # 2. set up the authenticator app: QR code and manual key; a wrong code first
    page.get_by_role("link", name="Authenticator-App einrichten").click()
    expect_heading(page, "Authenticator-App einrichten")
    expect(page.get_by_role("img", name="QR-Code für Ihre Authenticator-App")).to_be_visible()
    screenshot(page, "console-totp-setup")
    shown_key = "".join(page.locator("#manual-key").inner_text().split())
    submit(page, {"code": wrong_totp_code(shown_key)})
    expect(page.locator(".error-summary")).to_contain_text("Der Code ist falsch")
    secret, recovery = enrol_totp(page, base)
    assert secret == shown_key  # the same key until a code confirms it
    expect_heading(page, "Ihre Wiederherstellungscodes")
    assert len(recovery) == 10 and len(set(recovery)) == 10
    assert all(re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", c) for c in recovery)
    page.get_by_role("link", name="Ich habe die Codes gesichert").click()
    expect_heading(page, "Anmeldesicherheit")
    expect(page.get_by_role("link", name="Authenticator-App entfernen")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Sie haben 10 ungenutzte Wiederherstellungscodes")
    screenshot(page, "console-security")

    # 3. Wohngeld asks for "substantial": the signed-in citizen only adds the code (step-up)
    substantial_sign_in(page, wohn.url)
    assert page.url.startswith(base + "/login/second-factor")
    expect_heading(page, "Bestätigen Sie, dass Sie es sind")
    second_factor(page, "code", wrong_totp_code(secret))
    expect(page.locator(".error-summary")).to_contain_text("Der Code ist falsch")
    second_factor(page, "code", totp_code(secret, steps_ahead=1))  # the enrolment used "now"
    expect_heading(page, "Daten an Wohngeld Hessen übermitteln?")
    consent(page)
    assert page.url == wohn.url + "/meine-daten"
    assert portal_claim(page, "acr") == SUBSTANTIAL
    assert "otp" in portal_amr(page) and "pwd" in portal_amr(page)
    expect(page.locator("#level strong")).to_have_text("substanziell (Passwort und zweiter Faktor)")
    assert_accessible(page)
    screenshot(page, "portal-substantial")

    # 4. a passkey (the virtual authenticator) joins the app: no new recovery codes
    virtual_authenticator(page)
    add_passkey(page, base, "Laptop", CITIZEN_PASSWORD)
    expect_heading(page, "Anmeldesicherheit")
    expect(page.get_by_text("Ihr Passkey „Laptop“ wurde hinzugefügt.")).to_be_visible()
    expect(page.locator("main table")).to_contain_text("Laptop")

    # 5. signed out, a new substantial sign-in at Wohngeld: password, then the passkey
    page.goto(base + "/logout")
    confirm(page)
    substantial_sign_in(page, wohn.url)
    log_in(page, citizen, CITIZEN_PASSWORD)
    expect_heading(page, "Zweiter Schritt Ihrer Anmeldung")
    expect(page.locator("main h2")).to_contain_text(["Authenticator-App", "Passkey"])
    screenshot(page, "second-factor")
    passkey_second_factor(page)
    assert page.url == wohn.url + "/meine-daten"  # consent given before: no question
    assert portal_claim(page, "acr") == SUBSTANTIAL
    assert "hwk" in portal_amr(page) and "otp" not in portal_amr(page)

    # 6. a recovery code instead of the factor: it works once, nine are left
    page.goto(base + "/logout")
    confirm(page)
    page.goto(base + "/login")
    log_in(page, citizen, CITIZEN_PASSWORD)
    second_factor(page, "recovery_code", recovery[0])
    assert page.url == base + "/account"
    page.goto(base + "/account/security")
    expect(page.locator("main")).to_contain_text("Sie haben 9 ungenutzte Wiederherstellungscodes")
