"""Small steps a person takes in the browser, one function each, so a test (or a later flow such
as a TOTP or passkey step-up) is a short sequence of them.

Fields are found by their ``name`` (the form contract in product.md), what a person sees is
asserted through headings and texts. Every step waits for the page it leads to.
"""

from __future__ import annotations

import time

import pyotp
from playwright.sync_api import Page, expect

from tests.support.mailbox import Mailbox, links_in


def heading(page: Page) -> str:
    return page.locator("h1").first.inner_text().strip()


def expect_heading(page: Page, text: str) -> None:
    expect(page.locator("h1").first).to_have_text(text)


def submit(page: Page, fields: dict[str, str | bool], button: str | None = None) -> None:
    """Fill the page's first POST form by field name (``True``/``False`` ticks a checkbox) and
    press its (named) submit button."""
    form = page.locator("main form[method=post]").first
    for name, value in fields.items():
        if isinstance(value, bool):
            form.locator(f"[name={name}]").set_checked(value)
        else:
            form.locator(f"[name={name}]").fill(value)
    target = form.get_by_role("button", name=button) if button else form.locator(
        "button[type=submit]").first
    with page.expect_navigation():
        target.click()


def fill_registration(page: Page, email: str, password: str, *, given_name: str = "Erika",
                      family_name: str = "Mustermann") -> None:
    """On the registration page: fill in and send the form."""
    submit(page, {"email": email, "given_name": given_name, "family_name": family_name,
                  "password": password, "password_confirm": password})


def register(page: Page, base: str, email: str, password: str, **names: str) -> None:
    page.goto(base + "/register")
    fill_registration(page, email, password, **names)


def open_mail_link(page: Page, outbox: Mailbox, address: str, contains: str) -> str:
    """Follow the link containing ``contains`` in the newest mail to ``address``."""
    mails = outbox.wait_for(address)
    link = next(lnk for lnk in links_in(mails[-1]) if contains in lnk)
    page.goto(link)
    return link


def log_in(page: Page, email: str, password: str) -> None:
    """On the provider's login page: e-mail and password."""
    submit(page, {"email": email, "password": password})


def consent(page: Page, decision: str = "allow") -> None:
    """On the consent page: press the approving (or the refusing) button."""
    with page.expect_navigation():
        page.locator(f"button[name=decision][value={decision}]").click()


def portal_sign_in(page: Page, portal_url: str) -> None:
    """At a demo portal's start page: "Mit Servicekonto anmelden"."""
    page.goto(portal_url + "/")
    with page.expect_navigation():
        page.get_by_role("link", name="Mit Servicekonto anmelden", exact=True).click()


def portal_claim(page: Page, name: str) -> str:
    """A claim as the demo portal shows it on "Meine Daten"."""
    return page.locator(f"#userinfo-claims [data-claim={name}], "
                        f"#id-token-claims [data-claim={name}]").first.inner_text().strip()


def confirm(page: Page) -> None:
    """Press the one submit button of a confirmation page (withdraw, sign out, ...)."""
    submit(page, {})


def request_password_reset(page: Page, base: str, outbox: Mailbox, email: str) -> str:
    """"Forgot your password?": send the form; the reset link from the mail."""
    page.goto(base + "/password/forgot")
    submit(page, {"email": email})
    mails = outbox.wait_for(email)
    return next(lnk for lnk in links_in(mails[-1]) if "/password/reset/" in lnk)


def operator_password(page: Page, base: str, email: str, password: str) -> None:
    """Operator/administrator login, first step: e-mail and password."""
    page.goto(base + "/operators/login")
    submit(page, {"email": email, "password": password})


def operator_enrol(page: Page) -> str:
    """On the authenticator set-up page (first login): an authenticator app (pyotp here)
    turns the manual key into the code. Returns the key."""
    key = "".join(page.locator("#manual-key").inner_text().split())
    submit(page, {"code": pyotp.TOTP(key).now()})
    return key


def operator_register_portal(page: Page, base: str, name: str, redirect_uri: str) -> str:
    """An operator registers a portal; its client_id as the confirmation page shows it."""
    page.goto(base + "/operators/portals/new")
    submit(page, {"client_name": name, "redirect_uris": redirect_uri})
    return page.locator("#client-id").inner_text().strip()


def current_session_id(page: Page, base: str) -> str:
    """The sid in the "sign out" link of this session on the console's sessions page."""
    page.goto(base + "/account/sessions")
    row = page.locator("tr", has=page.locator("td strong"))
    href = row.locator("a[href*='/account/sessions/']").get_attribute("href")
    return href.split("/account/sessions/", 1)[1].split("/", 1)[0]


# -- second factors: authenticator app (TOTP), recovery codes, passkeys ----------------------
# (a separate block: tests/browser/test_flow.py, test_passkeys.py and the MFA pages of
# test_accessibility.py use these steps)

def totp_code(secret: str, steps_ahead: int = 0) -> str:
    """The code an authenticator app shows ``steps_ahead`` 30-second steps from now. A code is
    accepted once (replay refused) and one step of clock drift is allowed, so a second code in
    the same step is the next step's."""
    return pyotp.TOTP(secret).at(time.time() + steps_ahead * 30)


def wrong_totp_code(secret: str) -> str:
    """Six digits the app does not show now, nor one step before or after (all accepted)."""
    valid = {totp_code(secret, steps) for steps in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in valid)


def enrol_totp(page: Page, base: str) -> tuple[str, list[str]]:
    """In the console: "Set up authenticator app", read the manual key from the page (as a
    person types it into the app), confirm with the app's code. Returns the key and the
    recovery codes the next page shows (once)."""
    page.goto(base + "/account/security/totp")
    key = "".join(page.locator("#manual-key").inner_text().split())
    submit(page, {"code": totp_code(key)})
    codes = [c.strip() for c in page.locator(".recovery-codes code").all_inner_texts()]
    return key, codes


def second_factor(page: Page, field: str, value: str) -> None:
    """On the second-factor page: fill the form holding ``field`` (``code`` for the app,
    ``recovery_code``) and press its button; the page holds one form per factor."""
    form = page.locator("main form[method=post]", has=page.locator(f"[name={field}]"))
    form.locator(f"[name={field}]").fill(value)
    with page.expect_navigation():
        form.locator("button[type=submit]").click()


def virtual_authenticator(page: Page) -> str:
    """Chromium's virtual authenticator through the DevTools protocol (CTAP2, built in, resident
    keys, user verified, presence confirmed automatically): the page's own passkeys.js then
    creates and uses passkeys as with a real device. Only for the provider's ``localhost``
    origin (WebAuthn refuses IP addresses). Lives as long as the page's CDP session, which is
    kept on the page object. Returns the authenticator id (``WebAuthn.getCredentials``)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    found = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True}})
    page._virtual_authenticator_cdp = cdp  # noqa: SLF001 - keeps the authenticator alive
    return found["authenticatorId"]


def start_adding_passkey(page: Page, base: str, name: str, password: str) -> None:
    """Console: "Add a passkey", its name and the current password; leads to the create page."""
    page.goto(base + "/account/passkeys/new")
    submit(page, {"name": name, "current_password": password})


def create_passkey(page: Page) -> None:
    """On the create page: press the button; passkeys.js asks the (virtual) authenticator and
    submits the answer, the security page confirms."""
    with page.expect_navigation():
        page.locator("form[data-passkey=register] button[type=submit]").click()


def add_passkey(page: Page, base: str, name: str, password: str) -> None:
    start_adding_passkey(page, base, name, password)
    create_passkey(page)


def passkey_second_factor(page: Page) -> None:
    """On the second-factor page: "Sign in with passkey" (the virtual authenticator answers)."""
    with page.expect_navigation():
        page.locator("form[data-passkey=login] button[type=submit]").click()


def passkey_id(page: Page) -> str:
    """The id of the first passkey listed on the security page (from its "rename" link)."""
    href = page.locator("main a[href*='/account/passkeys/'][href$='/rename']").first
    return href.get_attribute("href").split("/account/passkeys/", 1)[1].split("/", 1)[0]
