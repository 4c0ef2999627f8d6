"""What axe cannot see: keyboard use and visible focus, the skip link, error summaries that lead
to their fields, and sign-in without JavaScript."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.browser import flows  # the passkey test at the end
from tests.browser.conftest import VIEWPORT, new_context
from tests.browser.flows import expect_heading, portal_claim, portal_sign_in, submit
from tests.demo.conftest import PASSWORD as CITIZEN_PASSWORD

FOCUSED = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  return {tag: el.tagName.toLowerCase(), cls: el.className, text: (el.innerText || '').trim(),
          name: el.getAttribute('name'), inMain: !!el.closest('main'),
          outline: style.outlineStyle, width: parseFloat(style.outlineWidth),
          left: box.left, top: box.top, right: box.right, bottom: box.bottom};
}"""


def focused(page: Page) -> dict:
    return page.evaluate(FOCUSED)


def test_skip_link_comes_first_and_leads_into_the_content(live_server, page: Page):
    page.goto(live_server.url + "/login")
    page.keyboard.press("Tab")
    first = focused(page)
    assert first["cls"] == "skip-link" and first["text"] == "Zum Inhalt springen"
    assert first["left"] >= 0 and first["right"] <= VIEWPORT["width"]  # shown when focused
    assert first["top"] >= 0 and first["bottom"] <= VIEWPORT["height"]
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    after = focused(page)
    assert after["inMain"], after  # past the header and its navigation
    assert after["name"] == "email"


def test_every_focusable_element_shows_its_focus(live_server, page: Page):
    """Tab through a page with header, form and links: each stop has a visible outline."""
    page.goto(live_server.url + "/register")
    submit(page, {})  # with errors: the summary's links are stops too
    stops = []
    for _ in range(40):
        page.keyboard.press("Tab")
        now = focused(page)
        if now["tag"] == "body" or (stops and now == stops[0]):
            break
        stops.append(now)
        assert now["outline"] != "none" and now["width"] >= 2, now
    tags = {s["tag"] for s in stops}
    assert {"a", "input", "button"} <= tags, stops
    assert any(s["name"] == "password_confirm" for s in stops)


def test_error_summary_links_lead_to_the_fields(live_server, page: Page):
    page.goto(live_server.url + "/register")
    submit(page, {"email": "not-an-address"})
    summary = page.locator(".error-summary")
    expect(summary).to_be_visible()
    assert summary.get_attribute("role") == "alert"
    links = summary.locator("a")
    assert links.count() >= 3
    for i in range(links.count()):
        target = links.nth(i).get_attribute("href")
        assert target.startswith("#")
        field = page.locator(target)
        assert field.get_attribute("aria-invalid") == "true"
        described = field.get_attribute("aria-describedby").split()
        message = page.locator(f"#{target[1:]}-error")
        assert f"{target[1:]}-error" in described
        expect(message).not_to_be_empty()
        # the field's label names it, and the summary's link says which field is wrong
        label = page.locator(f"label[for={target[1:]}]").inner_text().strip()
        assert links.nth(i).inner_text().startswith(label)


def test_sign_in_at_a_portal_by_keyboard_without_javascript(live_server, portals, citizen,
                                                            chromium: Browser):
    context = new_context(chromium, "de", java_script_enabled=False)
    page = context.new_page()
    try:
        hund = portals["hundesteuer"]
        portal_sign_in(page, hund.url)
        expect_heading(page, "Anmelden")
        page.locator("[name=email]").focus()
        page.keyboard.type(citizen)
        page.keyboard.press("Tab")
        page.keyboard.type(CITIZEN_PASSWORD)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        expect_heading(page, "Daten an Hundesteuer Musterstadt übermitteln?")
        # the approving button, reached by keyboard focus, pressed with Enter
        page.get_by_role("button", name="Zustimmen und weiter").focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url == hund.url + "/meine-daten"
        assert portal_claim(page, "family_name") == "Mustermann"
    finally:
        context.close()


# -- second factors: the passkey buttons by keyboard ---------------------------------------------

def tab_to(page: Page, text: str, limit: int = 40) -> list[dict]:
    """Press Tab until the element showing ``text`` has the focus; every stop on the way (and
    that one) must show its focus. Returns the stops."""
    stops = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        assert now["outline"] != "none" and now["width"] >= 2, now
        stops.append(now)
        if now["text"] == text:
            return stops
    raise AssertionError(f"{text!r} not reached by Tab: {[s['text'] for s in stops]}")


def test_passkey_created_and_used_by_keyboard(live_server, citizen, page: Page):
    """The create button and the second-factor page's passkey button are ordinary buttons:
    reached with Tab (visible focus), pressed with Enter; the authenticator does the rest."""
    base = live_server.url
    flows.virtual_authenticator(page)
    page.goto(base + "/login")
    flows.log_in(page, citizen, CITIZEN_PASSWORD)
    flows.start_adding_passkey(page, base, "Laptop", CITIZEN_PASSWORD)
    expect_heading(page, "Passkey erstellen")
    tab_to(page, "Passkey jetzt erstellen")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect_heading(page, "Ihre Wiederherstellungscodes")

    page.goto(base + "/logout")
    submit(page, {})
    page.goto(base + "/login")
    flows.log_in(page, citizen, CITIZEN_PASSWORD)
    expect_heading(page, "Zweiter Schritt Ihrer Anmeldung")
    tab_to(page, "Mit Passkey anmelden")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == base + "/account"
