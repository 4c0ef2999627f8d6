"""Sign-in history, active sessions (two browsers), signing out one or every session with
back-channel logout, and "this was not me"."""

from __future__ import annotations

from tests.console.conftest import (
    FIREFOX,
    SAFARI,
    assert_delivered,
    bc_portal,
    browser_post,
    events,
    logged_in,
    logout_claims,
    userinfo_status,
    wait_deliveries,
)
from tests.oidc.conftest import PASSWORD


def _two_browsers(provider, receiver):  # noqa: ANN001, ANN202
    email = provider.citizen()
    first, second = provider.browser(), provider.browser()
    first.http.headers["User-Agent"] = FIREFOX
    second.http.headers["User-Agent"] = SAFARI
    hund = bc_portal(provider, "Hundesteuer", receiver)
    wohn = bc_portal(provider, "Wohngeld", receiver)
    t_first, _, _ = provider.login_flow(hund, first, email)
    t_second, _, _ = provider.login_flow(wohn, second, email)
    return email, first, second, (hund, t_first), (wohn, t_second)


def _sids(browser):  # noqa: ANN001, ANN202
    import re

    html = browser.http.get(browser.base + "/account/sessions").text
    return re.findall(r'/account/sessions/([A-Za-z0-9_-]+)/end"', html)


def _current_sid(browser):  # noqa: ANN001, ANN202
    import re

    html = browser.http.get(browser.base + "/account/sessions").text
    row = html.split("diese Sitzung")[1].split("</tr>")[0]
    [sid] = re.findall(r"/account/sessions/([A-Za-z0-9_-]+)/end", row)
    return sid


def test_sessions_list_shows_both_browsers(provider, receiver):
    email, first, second, *_ = _two_browsers(provider, receiver)
    page = first.http.get(provider.base + "/account/sessions")
    assert page.status_code == 200
    html = page.text
    assert "Firefox unter Windows" in html and "Safari unter iOS" in html
    assert "diese Sitzung" in html and "127.0.0.1" in html and "Basis" in html
    assert len(_sids(first)) == 2
    english = first.http.get(provider.base + "/account/sessions?lang=en").text
    assert "Firefox on Windows" in english and "this session" in english


def test_sign_in_history(provider, receiver):
    email, first, second, *_ = _two_browsers(provider, receiver)
    failed = provider.browser()
    failed.login(email, "falsches-Passwort-123")
    page = first.http.get(provider.base + "/account/sign-ins")
    assert page.status_code == 200
    html = page.text
    assert html.count("<td>Angemeldet</td>") == 2
    assert "Fehlgeschlagen: falsches Passwort" in html
    assert "127.0.0.1" in html
    assert "Firefox unter Windows (dieser Browser)" in html  # matched by the UA hash


def test_sign_out_another_session(provider, receiver):
    email, first, second, (hund, t_first), (wohn, t_second) = _two_browsers(provider, receiver)
    other_sid = [sid for sid in _sids(first) if sid != _current_sid(first)][0]
    confirm = first.http.get(provider.base + f"/account/sessions/{other_sid}/end")
    assert "Safari unter iOS" in confirm.text and "Ja, abmelden" in confirm.text
    response = browser_post(first, f"/account/sessions/{other_sid}/end")
    assert response.status_code == 303
    wait_deliveries(provider)
    assert logged_in(first) and not logged_in(second)
    assert userinfo_status(provider, t_second) == 401
    assert userinfo_status(provider, t_first) == 200
    assert_delivered(provider, receiver, ["Wohngeld"])
    [item] = receiver.received
    assert logout_claims(provider, item)["sid"] == other_sid
    [event] = events(provider.app, "account:sessions:ended")
    assert event["details"] == {"scope": "one", "sessions": 1}
    # an ended session: a notice, no error
    gone = first.http.get(provider.base + f"/account/sessions/{other_sid}/end")
    assert "bereits beendet" in gone.text


def test_sign_out_this_session(provider, receiver):
    email, first, second, (hund, t_first), _ = _two_browsers(provider, receiver)
    sid = _current_sid(first)
    response = browser_post(first, f"/account/sessions/{sid}/end")
    assert response.status_code == 200 and "Abgemeldet" in response.text
    wait_deliveries(provider)
    assert not logged_in(first) and logged_in(second)
    assert_delivered(provider, receiver, ["Hundesteuer"])


def test_sign_out_everywhere(provider, receiver):
    email, first, second, (hund, t_first), (wohn, t_second) = _two_browsers(provider, receiver)
    assert "Ja, überall abmelden" in first.http.get(
        provider.base + "/account/sessions/end-all").text
    response = browser_post(first, "/account/sessions/end-all")
    assert response.status_code == 200
    assert "Alle Sitzungen Ihres Kontos sind beendet." in response.text
    wait_deliveries(provider)
    assert not logged_in(first) and not logged_in(second)
    assert userinfo_status(provider, t_first) == 401
    assert userinfo_status(provider, t_second) == 401
    assert_delivered(provider, receiver, ["Hundesteuer", "Wohngeld"])
    [event] = events(provider.app, "account:sessions:ended")
    assert event["details"] == {"scope": "everywhere", "sessions": 2}


def test_this_was_not_me(provider, receiver):
    email, first, second, (hund, t_first), (wohn, t_second) = _two_browsers(provider, receiver)
    user_id = provider.user_id(email)
    response = browser_post(first, "/account/not-me")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/account/password")
    wait_deliveries(provider)
    assert not logged_in(second)
    assert_delivered(provider, receiver, ["Wohngeld"])
    [report] = events(provider.app, "account:compromise:reported", user_id)
    assert report["details"] == {"sessions_ended": 1}
    # every page now leads to the password change
    for path in ("/account", "/account/profile", "/account/sessions"):
        moved = first.http.get(provider.base + path, allow_redirects=False)
        assert moved.status_code == 303 and moved.headers["Location"].endswith(
            "/account/password"), path
    page = first.http.get(provider.base + "/account/password")
    assert page.status_code == 200 and "neues Passwort" in page.text

    # logging out and in again does not escape it (the audit event is the durable flag)
    browser_post(first, "/logout")
    first.login(email)
    moved = first.http.get(provider.base + "/account", allow_redirects=False)
    assert moved.status_code == 303 and moved.headers["Location"].endswith("/account/password")

    changed = browser_post(first, "/account/password", {
        "current_password": PASSWORD, "password": "Neues-Passwort-Rheingau-77",
        "password_confirm": "Neues-Passwort-Rheingau-77"})
    assert changed.status_code in (302, 303)
    assert first.http.get(provider.base + "/account", allow_redirects=False).status_code == 200
    assert first.http.get(provider.base + "/account/profile",
                          allow_redirects=False).status_code == 200


def test_not_me_also_stops_a_new_sign_in_through_a_portal(provider, receiver):
    email, first, second, (hund, _), _ = _two_browsers(provider, receiver)
    assert browser_post(first, "/account/not-me").status_code == 303
    fresh = provider.browser()
    rp = provider.rp(hund)
    url, _, _ = provider.authorization_url(rp, nonce="n")
    landing = fresh.go(url, email=email)
    assert landing.url is None  # not sent back to the portal
    assert fresh.pages[-1] == "/account/password"
