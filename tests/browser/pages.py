"""The pages the accessibility tests visit, as data: one list per audience.

A :class:`Visit` is a path (``{placeholders}`` are filled from values the test collected on the
way, e.g. a portal's client_id or a link from a mail), the HTTP status expected, an optional
action on the page before it is checked (to reach a state such as a form with errors), and an
optional screenshot name. To check a new page, add a ``Visit`` to the right list; to check a
page that needs a new kind of set-up, add a value to the test's ``values`` and use it here.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from playwright.sync_api import Page, expect

from tests.browser import flows  # the second-factor block at the end
from tests.browser.flows import fill_registration as register_form
from tests.browser.flows import log_in, submit
from tests.demo.conftest import PASSWORD as CITIZEN_PASSWORD

#: The citizen of tests.demo.conftest's ``citizen`` fixture (the CITIZEN list signs in as it).
CITIZEN_EMAIL = "erika.mustermann@example.org"


@dataclass(frozen=True)
class Visit:
    path: str
    status: int = 200
    #: something to do on the page before axe runs (reaching a state: errors shown, ...)
    action: Callable[[Page], None] | None = None
    #: file name (without .png) for docs/screenshots/, taken in German only
    screenshot: str | None = None


def submit_empty(page: Page) -> None:
    """Send the page's form as it is (empty fields): the error summary and field errors show."""
    submit(page, {})


def log_in_again(page: Page) -> None:
    log_in(page, CITIZEN_EMAIL, CITIZEN_PASSWORD)
    expect(page.locator(".error-summary")).to_have_count(0)


def delete_account(page: Page) -> None:
    submit(page, {"current_password": CITIZEN_PASSWORD, "confirm": True})
    expect(page.locator(".error-summary")).to_have_count(0)
    expect(page.locator("form[method=post]")).to_have_count(0)  # no confirmation form left


def set_new_password(page: Page) -> None:
    submit(page, {"password": "Birkenweg-9-Darmstadt", "password_confirm": "Birkenweg-9-Darmstadt"})
    expect(page.locator(".error-summary")).to_have_count(0)


def change_email(page: Page) -> None:
    submit(page, {"email": "erika.neu@example.org", "current_password": CITIZEN_PASSWORD})
    expect(page.locator(".error-summary")).to_have_count(0)


def register_someone(page: Page) -> None:
    register_form(page, f"someone-{secrets.token_hex(4)}@example.de", "Lindenallee-5-Kassel")


ANONYMOUS = [
    Visit("/", screenshot="start"),
    Visit("/login"),
    Visit("/login", action=submit_empty, screenshot="login-errors"),
    Visit("/register"),
    Visit("/register", action=submit_empty),
    Visit("/password/forgot"),
    Visit("/password/forgot", action=submit_empty),
    Visit("/register", action=register_someone),  # "please check your e-mail"
    Visit("{verify_link}", status=410),  # the link again (the test opened it): already used
    Visit("/verify/not-a-valid-token", status=400),
    Visit("{reset_link}"),               # choose a new password
    Visit("{reset_link}", action=submit_empty),
    Visit("{reset_link}", action=set_new_password),  # password changed (the link is used up)
    Visit("/password/reset/not-a-valid-token", status=400),
    Visit("/does-not-exist", status=404),
    Visit("/authorize?client_id=unknown&response_type=code&scope=openid", status=400),
    Visit("/operators/login", screenshot="operator-login"),
    Visit("/operators/login", action=submit_empty),
    Visit("/logout"),                       # "you are not logged in"
    Visit("/end-session"),                  # RP logout without a session
]

#: A signed-in citizen (tests.demo.conftest's, with its password) with a consent for the portal
#: ``{client_id}`` (session ``{sid}``).
CITIZEN = [
    Visit("/account", screenshot="console-overview"),
    Visit("/account/profile", screenshot="console-profile"),
    Visit("/account/profile", action=lambda page: submit(page, {"given_name": ""})),
    Visit("/account/portals"),
    Visit("/account/portals/{client_id}/withdraw"),
    Visit("/account/disclosures", screenshot="console-disclosures"),
    Visit("/account/sign-ins"),
    Visit("/account/sessions"),
    Visit("/account/sessions/{sid}/end"),
    Visit("/account/sessions/end-all"),
    Visit("/account/not-me"),
    Visit("/account/data", screenshot="console-data"),
    Visit("/account/delete"),
    Visit("/account/delete", action=submit_empty),
    Visit("/account/email"),
    Visit("/account/email", action=change_email),  # "confirm the link we sent"
    Visit("/account/password"),
    Visit("/account/password", action=submit_empty),
    Visit("/end-session", screenshot="logout-confirmation"),  # RP logout without id_token_hint
    Visit("/logout"),
    Visit("/logout", action=submit_empty),            # logged out ...
    Visit("/login", action=log_in_again),             # ... and in again
    Visit("/account/delete", action=delete_account),  # account deleted: keep it last
]

#: An administrator (member of an organisation) with the portal ``{client_id}`` registered, for
#: which another operator of the organisation asked for the birthdate (a decision waits).
OPERATOR = [
    Visit("/operators/", screenshot="operator-portals"),
    Visit("/operators/portals/new"),
    Visit("/operators/portals/new", action=submit_empty),
    Visit("/operators/portals/{client_id}", screenshot="operator-portal"),
    Visit("/operators/portals/{client_id}/edit"),
    Visit("/operators/portals/{client_id}/secret"),
    Visit("/operators/portals/{client_id}/data-access"),
    Visit("/operators/portals/{client_id}/record"),
    Visit("/admin/"),
    Visit("/admin/clients", screenshot="admin-portals"),
    Visit("/admin/clients/{client_id}"),
    Visit("/admin/clients/{client_id}/delete"),
    Visit("/admin/requests"),
    Visit("/admin/operators"),
    Visit("/admin/organisations"),
    Visit("/admin/initial-tokens"),
    Visit("/operators/logout"),
    Visit("/operators/logout", action=submit_empty),  # signed out: keep it last
]


# -- second factors (authenticator app, recovery codes, passkeys) ------------------------------
# (a separate block; test_accessibility.test_second_factor_pages walks the three lists in order)

def wrong_code(page: Page) -> None:
    """A code the app does not show (the error summary and the field's message appear)."""
    key = "".join(page.locator("#manual-key").inner_text().split())
    submit(page, {"code": flows.wrong_totp_code(key)})
    expect(page.locator(".error-summary")).to_have_count(1)


def wrong_second_factor_code(page: Page) -> None:
    # Five digits: never a valid code (a fixed six-digit one would be valid once in ~300,000).
    flows.second_factor(page, "code", "12345")
    expect(page.locator(".error-summary")).to_have_count(1)


def wrong_recovery_code(page: Page) -> None:
    flows.second_factor(page, "recovery_code", "AAAA-BBBB-CCCC-DDDD")
    expect(page.locator(".error-summary")).to_have_count(1)


def name_passkey(page: Page) -> None:
    """Name and password given: the create page (the button that calls the authenticator)."""
    submit(page, {"name": "Tablet", "current_password": CITIZEN_PASSWORD})
    expect(page.locator("form[data-passkey=register]")).to_have_count(1)


def clear_name(page: Page) -> None:
    submit(page, {"name": ""})
    expect(page.locator(".error-summary")).to_have_count(1)


def start_step_up(page: Page) -> None:
    """"Confirm with second factor now" on the security page: the second-factor page."""
    with page.expect_navigation():
        page.locator("form[action$='/account/security/confirm'] button").click()
    expect(page.locator("form[data-passkey=login]")).to_have_count(1)


def make_new_recovery_codes(page: Page) -> None:
    submit(page, {"current_password": CITIZEN_PASSWORD})
    expect(page.locator(".recovery-codes code")).to_have_count(10)


def log_in_to_second_factor(page: Page) -> None:
    log_in(page, CITIZEN_EMAIL, CITIZEN_PASSWORD)
    expect(page.locator("main form[method=post] [name=code]")).to_have_count(1)


def use_passkey(page: Page) -> None:
    flows.passkey_second_factor(page)
    expect(page.locator(".error-summary")).to_have_count(0)


#: A signed-in citizen without a second factor.
MFA_NONE = [
    Visit("/account/security"),                      # "no second factor yet"
    Visit("/account/security/totp"),                 # QR code and manual key
    Visit("/account/security/totp", action=wrong_code),
    Visit("/account/passkeys/new"),                  # name + password
    Visit("/account/passkeys/new", action=submit_empty),
    Visit("/account/passkeys/new", action=name_passkey),  # the create page
]

#: The authenticator app set up (the last and only factor; this session did not prove it).
MFA_TOTP = [
    Visit("/account/security"),
    Visit("/account/security/totp/remove"),          # last factor: confirm it first (step-up)
]

#: App and passkey ``{passkey_id}``; the list signs out and in again with the passkey.
MFA_FACTORS = [
    Visit("/account/security"),                      # both factors, session at "basic"
    Visit("/account/security/recovery-codes"),
    Visit("/account/security/recovery-codes", action=submit_empty),
    Visit("/account/security/recovery-codes", action=make_new_recovery_codes),
    Visit("/account/security/totp/remove"),          # not the last one: the password
    Visit("/account/security/totp/remove", action=submit_empty),
    Visit("/account/passkeys/{passkey_id}/rename"),
    Visit("/account/passkeys/{passkey_id}/rename", action=clear_name),
    Visit("/account/passkeys/{passkey_id}/remove"),
    Visit("/account/passkeys/{passkey_id}/remove", action=submit_empty),
    Visit("/account/security", action=start_step_up),  # "confirm it is you"
    Visit("/login/second-factor", action=wrong_second_factor_code),
    Visit("/logout", action=submit_empty),
    Visit("/login", action=log_in_to_second_factor),   # second step of the sign-in
    Visit("/login/second-factor", action=wrong_recovery_code),
    Visit("/login/second-factor", action=use_passkey),  # signed in at "substantial"
    Visit("/account/security"),                      # this session proved a factor
]
