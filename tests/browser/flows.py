"""Small steps a person takes in the browser, one function each, so a test (or a later flow such
as a TOTP or passkey step-up) is a short sequence of them.

Fields are found by their ``name`` (the form contract in product.md), what a person sees is
asserted through headings and texts. Every step waits for the page it leads to.
"""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support.mailbox import Mailbox, links_in


def heading(page: Page) -> str:
    return page.locator("h1").first.inner_text().strip()


def expect_heading(page: Page, text: str) -> None:
    expect(page.locator("h1").first).to_have_text(text)


def submit(page: Page, fields: dict[str, str], button: str | None = None) -> None:
    """Fill the page's first POST form by field name and press its (named) submit button."""
    form = page.locator("main form[method=post]").first
    for name, value in fields.items():
        form.locator(f"[name={name}]").fill(value)
    target = form.get_by_role("button", name=button) if button else form.locator(
        "button[type=submit]").first
    with page.expect_navigation():
        target.click()


def register(page: Page, base: str, email: str, password: str, *, given_name: str = "Erika",
             family_name: str = "Mustermann") -> None:
    page.goto(base + "/register")
    submit(page, {"email": email, "given_name": given_name, "family_name": family_name,
                  "password": password, "password_confirm": password})


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
        page.get_by_role("link", name="Mit Servicekonto anmelden").click()


def portal_claim(page: Page, name: str) -> str:
    """A claim as the demo portal shows it on "Meine Daten"."""
    return page.locator(f"#userinfo-claims [data-claim={name}], "
                        f"#id-token-claims [data-claim={name}]").first.inner_text().strip()


def confirm(page: Page) -> None:
    """Press the one submit button of a confirmation page (withdraw, sign out, ...)."""
    submit(page, {})


def operator_log_in(page: Page, base: str, email: str, password: str, code: str) -> None:
    """Operator/administrator login: password, then the TOTP code."""
    page.goto(base + "/operators/login")
    submit(page, {"email": email, "password": password})
    submit(page, {"code": code})
