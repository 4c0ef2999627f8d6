"""RP-initiated logout (end_session_endpoint) over real HTTP, with a real browser session."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

from servicekonto.audit.tags import AuditTag
from tests.support.forms import parse_forms

LOGOUT_TARGET = "http://127.0.0.1:9/abgemeldet"


def _portal(provider, name="Bürgerportal"):  # noqa: ANN001, ANN201
    return provider.portal(name, post_logout_redirect_uris=[LOGOUT_TARGET])


def _logged_in(browser) -> bool:  # noqa: ANN001
    return browser.http.get(browser.base + "/account", allow_redirects=False).status_code == 200


def _end_session(browser, **params):  # noqa: ANN001, ANN003, ANN201
    return browser.http.get(browser.base + "/end-session?" + urlencode(params),
                            allow_redirects=False)


def _userinfo_status(provider, access_token: str) -> int:  # noqa: ANN001
    return requests.get(provider.base + "/userinfo", timeout=10,
                        headers={"Authorization": f"Bearer {access_token}"}).status_code


def _setup(provider):  # noqa: ANN001, ANN201
    email = provider.citizen()
    portal = _portal(provider)
    browser = provider.browser()
    token, _, _ = provider.login_flow(portal, browser, email)
    assert _logged_in(browser)
    return email, portal, browser, token


def test_discovery_advertises_end_session(provider):
    doc = requests.get(provider.base + "/.well-known/openid-configuration", timeout=10).json()
    assert doc["end_session_endpoint"] == provider.base + "/end-session"
    assert doc["backchannel_logout_supported"] is True


def test_hint_and_registered_uri_log_out_and_redirect_with_state(provider):
    email, portal, browser, token = _setup(provider)
    response = _end_session(browser, id_token_hint=token["id_token"],
                            post_logout_redirect_uri=LOGOUT_TARGET, state="zustand-42")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == LOGOUT_TARGET
    assert parse_qs(location.query) == {"state": ["zustand-42"]}
    assert not _logged_in(browser)
    # the session's tokens are revoked with it
    assert _userinfo_status(provider, token["access_token"]) == 401
    events = provider.audit(str(AuditTag.OIDC_LOGOUT))
    assert len(events) == 1
    assert events[0]["client_id"] == portal.client_id
    assert events[0]["user"] == provider.user_id(email)


def test_post_works_like_get(provider):
    _, _, browser, token = _setup(provider)
    response = browser.http.post(browser.base + "/end-session", allow_redirects=False, data={
        "id_token_hint": token["id_token"], "post_logout_redirect_uri": LOGOUT_TARGET})
    assert response.status_code == 302
    assert response.headers["Location"] == LOGOUT_TARGET
    assert not _logged_in(browser)


def test_unregistered_redirect_uri_is_an_error_page_never_a_redirect(provider):
    _, _, browser, token = _setup(provider)
    for target in ("https://evil.example/", LOGOUT_TARGET + "/x", LOGOUT_TARGET + "?a=1"):
        response = _end_session(browser, id_token_hint=token["id_token"],
                                post_logout_redirect_uri=target, state="s")
        assert response.status_code == 400, target
        assert "Location" not in response.headers
        assert response.headers["Content-Type"].startswith("text/html")
        assert "evil.example" not in response.text
    assert _logged_in(browser)  # nothing happened


def test_redirect_uri_of_another_portal_is_refused(provider):
    _, _, browser, token = _setup(provider)
    other_target = "http://127.0.0.1:9/anderes-portal"
    provider.portal("Anderes", post_logout_redirect_uris=[other_target])
    response = _end_session(browser, id_token_hint=token["id_token"],
                            post_logout_redirect_uri=other_target)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert _logged_in(browser)


def test_forged_hint_is_refused(provider):
    _, portal, browser, token = _setup(provider)
    claims = provider.id_claims(token["id_token"])
    forged = jwt.encode({"alg": "RS256", "kid": "fake"}, claims,
                        RSAKey.generate_key(2048, parameters={"kid": "fake"}))
    response = _end_session(browser, id_token_hint=forged, post_logout_redirect_uri=LOGOUT_TARGET)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert _logged_in(browser)


def test_client_id_must_match_hint_audience(provider):
    _, _, browser, token = _setup(provider)
    other = provider.portal("Anderes", post_logout_redirect_uris=[LOGOUT_TARGET])
    response = _end_session(browser, id_token_hint=token["id_token"], client_id=other.client_id,
                            post_logout_redirect_uri=LOGOUT_TARGET)
    assert response.status_code == 400
    assert _logged_in(browser)


def _confirmation_form(response):  # noqa: ANN001, ANN201
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    forms = parse_forms(response.text)
    assert len(forms) == 1 + sum(1 for f in forms if f["method"].lower() == "get"), forms
    posts = [f for f in forms if f["method"].lower() == "post"]
    assert len(posts) == 1
    return posts[0]


def test_without_hint_the_citizen_confirms_with_one_form(provider):
    _, portal, browser, token = _setup(provider)
    response = _end_session(browser, client_id=portal.client_id,
                            post_logout_redirect_uri=LOGOUT_TARGET, state="abc")
    form = _confirmation_form(response)
    assert len(form["buttons"]) == 1
    assert "Ja, abmelden" in response.text
    assert form["fields"].get("csrf_token")
    assert "Nein, angemeldet bleiben</a>" in response.text  # a link back, not a second form
    assert _logged_in(browser)  # nothing happens before the confirmation

    action = form["action"] if form["action"].startswith("http") else (
        provider.base + form["action"])
    done = browser.http.post(action, data=form["fields"], allow_redirects=False)
    assert done.status_code == 302
    assert done.headers["Location"] == LOGOUT_TARGET + "?state=abc"
    assert not _logged_in(browser)
    assert _userinfo_status(provider, token["access_token"]) == 401


def test_confirmation_without_a_portal_shows_a_goodbye_page(provider):
    _, _, browser, _ = _setup(provider)
    form = _confirmation_form(_end_session(browser))
    done = browser.http.post(provider.base + form["action"], data=form["fields"],
                             allow_redirects=False)
    assert done.status_code == 200
    assert "abgemeldet" in done.text
    assert not _logged_in(browser)


def test_confirmation_needs_the_csrf_token(provider):
    _, portal, browser, _ = _setup(provider)
    form = _confirmation_form(_end_session(browser, client_id=portal.client_id))
    fields = {k: v for k, v in form["fields"].items() if k != "csrf_token"}
    response = browser.http.post(provider.base + form["action"], data=fields,
                                 allow_redirects=False)
    assert response.status_code == 400
    assert _logged_in(browser)


def test_hint_for_another_citizen_asks_for_confirmation(provider):
    portal = _portal(provider)
    first, second = provider.browser(), provider.browser()
    token_a, _, _ = provider.login_flow(portal, first, provider.citizen())
    provider.login_flow(portal, second, provider.citizen())
    response = _end_session(second, id_token_hint=token_a["id_token"],
                            post_logout_redirect_uri=LOGOUT_TARGET)
    _confirmation_form(response)
    assert _logged_in(second)
    assert _logged_in(first)


def test_ui_locales_english(provider):
    _, portal, browser, _ = _setup(provider)
    response = _end_session(browser, client_id=portal.client_id, ui_locales="en-GB en")
    _confirmation_form(response)
    assert "Yes, log out" in response.text


def test_expired_hint_is_accepted(provider):
    provider.app.config["SERVICEKONTO"]["id_token_lifetime_seconds"] = 1
    _, _, browser, token = _setup(provider)
    claims = provider.id_claims(token["id_token"])
    time.sleep(max(0.0, claims["exp"] - time.time()) + 1.1)
    response = _end_session(browser, id_token_hint=token["id_token"],
                            post_logout_redirect_uri=LOGOUT_TARGET)
    assert response.status_code == 302
    assert response.headers["Location"] == LOGOUT_TARGET
    assert not _logged_in(browser)


def test_nobody_logged_in_redirects_with_a_valid_hint(provider):
    _, _, browser, token = _setup(provider)
    assert _end_session(browser, id_token_hint=token["id_token"]).status_code == 200  # logs out
    again = _end_session(browser, id_token_hint=token["id_token"],
                         post_logout_redirect_uri=LOGOUT_TARGET, state="x")
    assert again.status_code == 302
    assert again.headers["Location"] == LOGOUT_TARGET + "?state=x"
    assert len(provider.audit(str(AuditTag.OIDC_LOGOUT))) == 1


def test_garbage_hints_are_error_pages(provider):
    _, _, browser, _ = _setup(provider)
    for hint in ("garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "x" * 5000):
        response = _end_session(browser, id_token_hint=hint, post_logout_redirect_uri=LOGOUT_TARGET)
        assert response.status_code == 400, hint[:20]
        assert "Location" not in response.headers
    assert _logged_in(browser)


def test_error_page_speaks_the_requested_language(provider):
    _, _, browser, token = _setup(provider)
    german = _end_session(browser, id_token_hint=token["id_token"],
                          post_logout_redirect_uri="https://evil.example/")
    assert "Abmeldung nicht möglich" in german.text
    english = _end_session(browser, id_token_hint=token["id_token"], ui_locales="en",
                           post_logout_redirect_uri="https://evil.example/")
    assert "Logout not possible" in english.text
