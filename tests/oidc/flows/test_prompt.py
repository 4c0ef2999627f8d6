"""prompt, max_age, id_token_hint, login_hint, ui_locales."""

from __future__ import annotations

import time

from tests.oidc.conftest import PASSWORD, Provider


def test_not_logged_in_goes_to_login_with_hint_and_language(provider: Provider) -> None:
    portal = provider.portal()
    rp = provider.rp(portal)
    url, _state, _ = provider.authorization_url(rp, login_hint="erika@example.org",
                                                ui_locales="en-GB de")
    response = provider.browser().http.get(url, allow_redirects=False)
    location = response.headers["Location"]
    assert location.startswith("/login?next=%2Fauthorize%2Fresume%2F")
    assert "login_hint=erika%40example.org" in location and "lang=en" in location
    assert "reauth" not in location


def test_prompt_login_forces_password_once(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal()
    browser = provider.browser()
    provider.login_flow(portal, browser, email)
    time.sleep(1.1)  # auth_time has second resolution
    browser.pages.clear()
    token, _rp, _ = provider.login_flow(portal, browser, email, prompt="login")
    assert "/login" in browser.pages
    claims = provider.id_claims(token["id_token"])
    assert time.time() - claims["auth_time"] < 2


def test_select_account_is_a_new_login(provider: Provider) -> None:
    """One account per browser session: select_account shows the login form (reauth)."""
    email = provider.citizen()
    portal = provider.portal()
    browser = provider.browser()
    provider.login_flow(portal, browser, email)
    time.sleep(1.1)
    rp = provider.rp(portal)
    url, _state, _ = provider.authorization_url(rp, prompt="select_account")
    first = browser.http.get(url, allow_redirects=False)
    assert "reauth=1" in first.headers["Location"]
    assert "code" in browser.go(url, email=email).params


def test_ui_locales_english_consent_page(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal()
    browser = provider.browser()
    rp = provider.rp(portal)
    url, _state, _ = provider.authorization_url(rp, ui_locales="en")
    landing = browser.go(url, email=email, consent=None)
    assert "Agree and continue" in landing.response.text
    assert "E-mail address" in landing.response.text


def test_prompt_login_without_a_second_login_does_not_loop(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal()
    browser = provider.browser()
    provider.login_flow(portal, browser, email)
    time.sleep(1.1)
    rp = provider.rp(portal)
    url, _state, _ = provider.authorization_url(rp, prompt="login")
    first = browser.http.get(url, allow_redirects=False)
    assert "reauth=1" in first.headers["Location"]
    landing = browser.go(url, email=email, password=PASSWORD)
    assert "code" in landing.params


def test_max_age(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal()
    browser = provider.browser()
    provider.login_flow(portal, browser, email)
    time.sleep(1.1)
    rp = provider.rp(portal)
    url, _state, _ = provider.authorization_url(rp, max_age="0", prompt="none")
    assert browser.go(url).params["error"] == "login_required"
    url, _state, _ = provider.authorization_url(rp, max_age="3600", prompt="none")
    assert "code" in browser.go(url).params
    browser.pages.clear()
    token, _rp, _ = provider.login_flow(portal, browser, email, max_age="0")
    assert "/login" in browser.pages
    assert time.time() - provider.id_claims(token["id_token"])["auth_time"] < 3


def test_id_token_hint(provider: Provider) -> None:
    erika = provider.citizen()
    max_ = provider.citizen()
    portal = provider.portal()
    browser_erika = provider.browser()
    token, _rp, _ = provider.login_flow(portal, browser_erika, erika)
    hint = token["id_token"]
    rp = provider.rp(portal)
    url, _state, _ = provider.authorization_url(rp, prompt="none", id_token_hint=hint)
    assert "code" in browser_erika.go(url).params

    browser_max = provider.browser()
    provider.login_flow(portal, browser_max, max_)
    url, _state, _ = provider.authorization_url(rp, prompt="none", id_token_hint=hint)
    assert browser_max.go(url).params["error"] == "login_required"
    url, _state, _ = provider.authorization_url(rp, id_token_hint=hint)
    first = browser_max.http.get(url, allow_redirects=False)
    assert "reauth=1" in first.headers["Location"]
    url, _state, _ = provider.authorization_url(rp, id_token_hint="not-a-jwt")
    assert browser_max.go(url).params["error"] == "invalid_request"


def test_forged_id_token_hint_is_refused(provider: Provider) -> None:
    """A hint whose payload was changed (signature no longer matches) is not believed."""
    import base64
    import json

    erika = provider.citizen()
    portal = provider.portal()
    browser = provider.browser()
    token, _rp, _ = provider.login_flow(portal, browser, erika)
    header, payload, signature = token["id_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = f"{header}.{forged_payload}.{signature}"
    rp = provider.rp(portal)
    url, _state, _ = provider.authorization_url(rp, prompt="none", id_token_hint=forged)
    assert browser.go(url).params["error"] == "invalid_request"
