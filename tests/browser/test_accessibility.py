"""axe-core on every page, in German and in English: anonymous pages, the account console, the
consent page, the logout confirmations and the operator/administrator pages (tests/browser/
pages.py lists them). Each test collects every serious or critical violation of its pages and
fails once, listing them all; it also checks the status, the ``lang`` attribute, that a page
has exactly one ``h1`` and that it reflows to 320 CSS pixels without sideways scrolling."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.accounts.conftest import make_user
from tests.browser import flows, pages  # the second-factor test at the end
from tests.browser.conftest import (
    assert_accessible,
    axe_violations,
    describe,
    new_context,
    reflow_overflow,
    screenshot,
)
from tests.browser.flows import (
    consent,
    current_session_id,
    expect_heading,
    log_in,
    open_mail_link,
    operator_enrol,
    operator_password,
    operator_register_portal,
    portal_sign_in,
    register,
    request_password_reset,
)
from tests.browser.pages import ANONYMOUS, CITIZEN, CITIZEN_EMAIL, OPERATOR, Visit
from tests.demo.conftest import PASSWORD as CITIZEN_PASSWORD
from tests.portals.conftest import PASSWORD as OPERATOR_PASSWORD
from tests.portals.conftest import login as operator_login
from tests.portals.conftest import make_operator, make_org
from tests.portals.test_admin import request_birthdate

LANGUAGES = ["de", "en"]


def problems_of(page: Page, language: str) -> list[str]:
    """What is wrong with the page as it is now: axe violations, lang attribute, headings."""
    found = []
    lang = page.locator("html").get_attribute("lang")
    if lang != language:
        found.append(f"{page.url}: <html lang={lang!r}>, expected {language!r}")
    if page.locator("h1").count() != 1:
        found.append(f"{page.url}: {page.locator('h1').count()} h1 elements, expected one")
    violations = axe_violations(page)
    if violations:
        found.append(describe(page.url, violations))
    overflow = reflow_overflow(page)
    if overflow:
        found.append(f"{page.url}: {overflow}px wider than a 320px screen (WCAG 1.4.10 reflow)")
    return found


def check_pages(page: Page, base: str, visits: list[Visit], values: dict[str, Any],
                language: str) -> list[str]:
    """Visit each page (its action done), check it; every problem found, as text."""
    found = []
    for visit in visits:
        target = visit.path.format(**values)
        url = target if target.startswith("http") else base + target
        response = page.goto(url)
        if visit.action:
            visit.action(page)
        elif response is None or response.status != visit.status:
            found.append(f"{url}: status {response and response.status}, "
                         f"expected {visit.status}")
        found.extend(problems_of(page, language))
        if visit.screenshot and language == "de":
            screenshot(page, visit.screenshot)
    return found


def assert_no_problems(found: list[str]) -> None:
    assert not found, "accessibility problems:\n" + "\n".join(found)


@pytest.fixture(params=LANGUAGES)
def language(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def page_in(chromium: Browser, language: str):  # noqa: ANN201
    """A fresh browser profile whose Accept-Language asks for ``language``."""
    context = new_context(chromium, language)
    yield context.new_page()
    context.close()


@pytest.mark.screenshots
def test_anonymous_pages(app, live_server, outbox, page_in: Page, language: str):
    base, page = live_server.url, page_in
    found = []
    register(page, base, "erika@example.de", "Kastanienallee-17b-Kassel")
    found.extend(problems_of(page, language))  # "please check your e-mail"
    values = {"verify_link": open_mail_link(page, outbox, "erika@example.de", "/verify/")}
    found.extend(problems_of(page, language))  # "e-mail address confirmed"
    make_user(app, "max@example.de")
    values["reset_link"] = request_password_reset(page, base, outbox, "max@example.de")
    found.extend(problems_of(page, language))  # "if the address is known, a mail is on its way"
    found.extend(check_pages(page, base, ANONYMOUS, values, language))
    assert_no_problems(found)


@pytest.mark.screenshots
def test_citizen_pages(app, live_server, portals, citizen, page_in: Page, language: str):
    base, page, hund = live_server.url, page_in, portals["hundesteuer"]
    assert citizen == CITIZEN_EMAIL
    portal_sign_in(page, hund.url)
    found = problems_of(page, language)  # the login page reached from a portal
    log_in(page, citizen, CITIZEN_PASSWORD)
    found.extend(problems_of(page, language))  # the consent page
    consent(page)
    expect_heading(page, "Meine Daten")
    values = {"client_id": hund.client_id, "sid": current_session_id(page, base)}
    found.extend(check_pages(page, base, CITIZEN, values, language))
    assert_no_problems(found)


@pytest.mark.screenshots
def test_operator_and_administrator_pages(app, live_server, page_in: Page, language: str):
    base, page = live_server.url, page_in
    org_id = make_org(app, "Stadt Musterstadt")
    make_operator(app, org_id, admin=True, email="anna.amt@musterstadt.de")
    operator_password(page, base, "anna.amt@musterstadt.de", OPERATOR_PASSWORD)
    found = problems_of(page, language)  # set up the authenticator app (QR code)
    if language == "de":
        screenshot(page, "operator-totp-setup")
    operator_enrol(page)
    values = {"client_id": operator_register_portal(
        page, base, "Hundesteuer Musterstadt", "https://hund.musterstadt.de/callback")}
    found.extend(problems_of(page, language))  # registered: the client secret shown once
    colleague = app.test_client()  # a second operator asks for data (four eyes: admin decides)
    operator_login(colleague, app, make_operator(app, org_id))
    request_birthdate(colleague, values["client_id"])
    page.goto(base + "/admin/requests")
    expect(page.locator("main textarea[name=note]")).to_have_count(1)  # the decision form
    found.extend(check_pages(page, base, OPERATOR, values, language))
    assert_no_problems(found)


# -- second factors -----------------------------------------------------------------------------

def test_second_factor_pages(app, live_server, citizen, page_in: Page, language: str):
    """The security page without, with one and with two factors; authenticator-app set-up (QR
    code, manual key, wrong code), recovery codes, removal, passkey add/create/rename/remove,
    and the second-factor page (step-up and sign-in, with errors) with its three forms."""
    base, page = live_server.url, page_in
    page.goto(base + "/login")
    log_in(page, citizen, CITIZEN_PASSWORD)
    found = check_pages(page, base, pages.MFA_NONE, {}, language)
    flows.enrol_totp(page, base)
    found.extend(problems_of(page, language))  # the ten recovery codes, shown once
    found.extend(check_pages(page, base, pages.MFA_TOTP, {}, language))
    flows.virtual_authenticator(page)
    flows.add_passkey(page, base, "Laptop", CITIZEN_PASSWORD)
    values = {"passkey_id": flows.passkey_id(page)}
    found.extend(check_pages(page, base, pages.MFA_FACTORS, values, language))
    assert_no_problems(found)


def test_assert_accessible_fails_listing_rule_impact_target_and_help(page: Page):
    """The check itself can fail: a page with an unlabelled input and an image without alt."""
    page.set_content('<html lang="de"><head><title>t</title></head><body><main><h1>t</h1>'
                     '<img src="data:,"><input id="q"></main></body></html>')
    with pytest.raises(AssertionError) as failure:
        assert_accessible(page)
    report = str(failure.value)
    assert "[critical] image-alt" in report and "[critical] label" in report
    assert '["#q"]' in report and '["img"]' in report
    assert "https://dequeuniversity.com/rules/axe/" in report


def test_reflow_check_measures_sideways_scrolling(page: Page):
    page.set_content('<html lang="de"><body><div style="width: 600px">breit</div></body></html>')
    assert reflow_overflow(page) >= 280
    page.set_content('<html lang="de"><body><p>schmal</p></body></html>')
    assert reflow_overflow(page) == 0


def test_pages_reached_from_a_portal_and_from_mails(app, live_server, portals, outbox,
                                                   page_in: Page, language: str):
    """Pages only reached on the way: the unverified-account page (a portal sign-in before the
    e-mail link), the e-mail change confirmation opened from its mail, and "this was not me"
    leading to the forced password change."""
    base, page, hund = live_server.url, page_in, portals["hundesteuer"]
    password = "Kastanienallee-17b-Kassel"
    register(page, base, "neu@example.de", password)
    portal_sign_in(page, hund.url)
    log_in(page, "neu@example.de", password)
    assert page.url.startswith(base + "/authorize/resume/")
    found = problems_of(page, language)  # "please confirm your e-mail address first" (403)
    open_mail_link(page, outbox, "neu@example.de", "/verify/")
    page.goto(base + "/account/email")
    flows.submit(page, {"email": "neu.anders@example.de", "current_password": password})
    open_mail_link(page, outbox, "neu.anders@example.de", "/account/email/confirm/")
    assert "/account/email/confirm/" in page.url
    found.extend(problems_of(page, language))  # confirm the new address
    flows.submit(page, {})
    found.extend(problems_of(page, language))  # address changed
    page.goto(base + "/account/not-me")
    flows.submit(page, {})
    assert page.url == base + "/account/password"
    found.extend(problems_of(page, language))  # choose a new password now (flash shown)
    assert_no_problems(found)
