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
