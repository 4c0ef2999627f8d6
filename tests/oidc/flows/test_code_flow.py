"""The authorization-code login end to end: login form, consent, code, token, ID token, userinfo,
and single sign-on to a second portal."""

from __future__ import annotations

import time

from tests.oidc.conftest import Provider, http_post


def test_full_code_flow_with_id_token_and_userinfo(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal(scope="openid profile email address")
    browser = provider.browser()

    token, rp, landing = provider.login_flow(portal, browser, email,
                                             scope="openid profile email")
    assert "/login" in browser.pages and "/authorize/consent" not in browser.pages[:1]
    assert token["token_type"].lower() == "bearer"
    assert "refresh_token" not in token  # neither offline_access nor always_issue

    claims = provider.id_claims(token["id_token"])
    now = time.time()
    assert claims["iss"] == provider.issuer
    assert claims["aud"] == portal.client_id and claims["azp"] == portal.client_id
    assert claims["nonce"] == token["_nonce"]
    assert claims["acr"] == "http://eidas.europa.eu/LoA/low"
    assert claims["amr"] == ["pwd"]
    assert claims["sid"] and claims["at_hash"]
    assert claims["iat"] <= now + 5 < claims["exp"] + 5
    assert abs(claims["auth_time"] - now) < 60
    assert "email" not in claims  # scope claims go to userinfo

    info = rp.get(provider.base + "/userinfo").json()
    assert info["sub"] == claims["sub"]
    assert info["email"] == email and info["email_verified"] is True
    assert info["given_name"] == "Erika" and info["name"] == "Erika Mustermann"
    assert info["birthdate"] == "1964-08-12"
    assert "address" not in info and "phone_number" not in info  # not in scope

    released = provider.audit("oidc:claims:released")
    vias = [event["details"]["via"] for event in released]
    assert vias == ["id_token", "userinfo"]
    assert "email" in released[1]["details"]["claims"]
    assert all(email not in str(event["details"]) for event in released)
    assert provider.audit("oidc:code:issued") and provider.audit("oidc:token:issued")
    assert provider.audit("consent:grant:granted")[0]["details"]["claims"]


def test_token_response_headers(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal()
    browser = provider.browser()
    rp = provider.rp(portal)
    url, _state, verifier = provider.authorization_url(rp)
    landing = browser.go(url, email=email)
    response = http_post(provider.base + "/token", data={
        "grant_type": "authorization_code", "code": landing.params["code"],
        "redirect_uri": portal.redirect_uri, "code_verifier": verifier,
    }, auth=(portal.client_id, portal.secret))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    bad = http_post(provider.base + "/token", data={"grant_type": "authorization_code",
                                                        "code": "nope",
                                                        "redirect_uri": portal.redirect_uri},
                        auth=(portal.client_id, portal.secret))
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    assert bad.headers["Cache-Control"] == "no-store"
    wrong_secret = http_post(provider.base + "/token", data={
        "grant_type": "authorization_code", "code": "x", "redirect_uri": portal.redirect_uri},
        auth=(portal.client_id, "wrong"))
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"


def test_sso_second_portal_without_password_consent_once(provider: Provider) -> None:
    email = provider.citizen()
    first = provider.portal("Portal A", redirect_host="127.0.0.1")
    second = provider.portal("Portal B", redirect_host="localhost")
    browser = provider.browser()
    provider.login_flow(first, browser, email)

    browser.pages.clear()
    token, _rp, _ = provider.login_flow(second, browser, email=None)  # no password
    assert "/login" not in browser.pages
    assert len(browser.pages) == 1  # the consent page, once for this portal
    assert browser.pages[0].startswith("/authorize/resume/")

    browser.pages.clear()
    provider.login_flow(second, browser, email=None)
    assert browser.pages == []  # consent remembered: straight back with a code
    assert token["id_token"]


def test_unverified_citizen_is_refused(provider: Provider) -> None:
    email = provider.citizen(verified=False)
    portal = provider.portal()
    browser = provider.browser()
    login = browser.login(email)
    assert login.status_code in (200, 302)
    rp = provider.rp(portal)
    url, _state, _verifier = provider.authorization_url(rp)
    landing = browser.go(url, email=email)
    if landing.url is None:
        assert landing.response.status_code == 403
        assert "E-Mail-Adresse" in landing.response.text or "e-mail" in landing.response.text
    else:  # the login page itself refused the unverified account
        raise AssertionError(f"unexpected redirect to {landing.url}")
    landing = browser.go(url + "&prompt=none")
    assert landing.params["error"] == "interaction_required"
    assert not provider.audit("oidc:code:issued")


def test_id_token_signed_with_the_portals_algorithm(provider: Provider) -> None:
    from joserfc import jws

    email = provider.citizen()
    browser = provider.browser()
    for alg in ("ES256", "PS256"):
        portal = provider.portal(f"Portal {alg}", id_token_signed_response_alg=alg)
        token, _rp, _ = provider.login_flow(portal, browser, email)
        header = jws.extract_compact(token["id_token"].encode()).protected
        assert header["alg"] == alg and header["kid"]
        assert provider.id_claims(token["id_token"])["aud"] == portal.client_id
        email = None  # signed in already


def test_pending_requests_are_capped(provider: Provider) -> None:
    from oidc.authorize import MAX_PENDING

    email = provider.citizen()
    portal = provider.portal()
    browser = provider.browser()
    rp = provider.rp(portal)
    resumes = []
    for _ in range(MAX_PENDING + 1):
        url, _state, _ = provider.authorization_url(rp)
        location = browser.http.get(url, allow_redirects=False).headers["Location"]
        resumes.append(location.split("next=")[1].split("&")[0].replace("%2F", "/"))
    browser.login(email)
    oldest = browser.http.get(provider.base + resumes[0], allow_redirects=False)
    assert oldest.status_code == 400  # dropped: the newest MAX_PENDING are kept
    assert "code" in browser.go(provider.base + resumes[-1]).params


def test_suspended_portal_cannot_redeem(provider: Provider) -> None:
    from oidc.clients import require_client, set_status
    from servicekonto.db import db

    email = provider.citizen()
    portal = provider.portal()
    rp = provider.rp(portal)
    url, _state, verifier = provider.authorization_url(rp)
    code = provider.browser().go(url, email=email).params["code"]
    with provider.app.app_context():
        set_status(db.session, require_client(db.session, portal.client_id), "suspended")
        db.session.commit()
    response = http_post(provider.base + "/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": portal.redirect_uri,
        "code_verifier": verifier}, auth=(portal.client_id, portal.secret))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
