"""Consent: the page (form contract, portal details, plain-language data list), stored per
portal, skipped when covered, always shown with prompt=consent; refusal -> access_denied."""

from __future__ import annotations

from urllib.parse import urlencode

from tests.oidc.conftest import Provider
from tests.support.forms import parse_forms


def test_consent_page_contract(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal("Hundesteuer Musterstadt", scope="openid profile email address",
                             operator="Stadt Musterstadt")
    browser = provider.browser()
    browser.login(email)
    rp = provider.rp(portal, scope="openid profile email address")
    url, _state, _ = provider.authorization_url(rp)
    landing = browser.go(url + "&ui_locales=de", consent=None)
    page = landing.response.text
    forms = parse_forms(page)
    assert len([f for f in forms if f["method"].lower() == "post"]) == 1
    buttons = forms[-1]["buttons"]
    assert [(b["name"], b["value"]) for b in buttons] == [("decision", "allow"),
                                                          ("decision", "deny")]
    assert "csrf_token" in forms[-1]["fields"] and forms[-1]["fields"]["pending"]
    for text in ("Hundesteuer Musterstadt", "Stadt Musterstadt", "Vor- und Nachname",
                 "Geburtsdatum", "E-Mail-Adresse", "Anschrift", "Zustimmen und weiter",
                 "Ablehnen"):
        assert text in page, text


def test_refusal_is_access_denied_stored_and_audited(provider: Provider) -> None:
    from servicekonto.consent.models import Consent
    from servicekonto.db import db

    email = provider.citizen()
    portal = provider.portal()
    rp = provider.rp(portal)
    url, state, _ = provider.authorization_url(rp)
    landing = provider.browser().go(url, email=email, consent="deny")
    assert landing.params["error"] == "access_denied" and landing.params["state"] == state
    assert landing.params["iss"] == provider.issuer
    refused = provider.audit("consent:grant:refused")
    assert refused and "email" in refused[0]["details"]["claims"]
    with provider.app.app_context():
        consent = db.session.query(Consent).one()
        assert "email" in consent.refused_claims and "openid" not in consent.granted_scopes


def test_prompt_none_without_consent_and_prompt_consent(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal()
    browser = provider.browser()
    browser.login(email)
    rp = provider.rp(portal, scope="openid email")
    url, _state, _ = provider.authorization_url(rp, prompt="none")
    assert browser.go(url).params["error"] == "consent_required"

    provider.login_flow(portal, browser, scope="openid email")  # consents
    url, _state, _ = provider.authorization_url(rp, prompt="none")
    assert "code" in browser.go(url).params
    browser.pages.clear()
    url, _state, _ = provider.authorization_url(rp, prompt="consent")
    assert "code" in browser.go(url).params
    assert len(browser.pages) == 1 and browser.pages[0].startswith("/authorize/resume/")

    # Asking for more than was granted shows the page again.
    bigger = provider.rp(portal, scope="openid profile email")
    url, _state, _ = provider.authorization_url(bigger, prompt="none")
    assert browser.go(url).params["error"] == "consent_required"


def test_tampered_or_expired_pending_id(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal()
    browser = provider.browser()
    browser.login(email)
    rp = provider.rp(portal)
    url, _state, _ = provider.authorization_url(rp)
    landing = browser.go(url, consent=None)
    form = parse_forms(landing.response.text)[-1]
    response = browser.http.post(provider.base + "/authorize/consent",
                                 data={**form["fields"], "pending": "forged",
                                       "decision": "allow"}, allow_redirects=False)
    assert response.status_code == 400 and "Location" not in response.headers
    no_csrf = browser.http.post(provider.base + "/authorize/consent",
                                data={"pending": form["fields"]["pending"],
                                      "decision": "allow"}, allow_redirects=False)
    assert no_csrf.status_code == 400 and "Location" not in no_csrf.headers
    resume = browser.http.get(provider.base + "/authorize/resume/unknown",
                              allow_redirects=False)
    assert resume.status_code == 400
    assert urlencode  # keep import


def test_withdrawal_revokes_tokens_and_asks_again(provider: Provider) -> None:
    from oidc.clients import require_client
    from servicekonto.consent import service
    from servicekonto.db import db

    email = provider.citizen()
    portal = provider.portal()
    browser = provider.browser()
    token, rp, _ = provider.login_flow(portal, browser, email)
    assert rp.get(provider.base + "/userinfo").status_code == 200
    with provider.app.app_context():
        client = require_client(db.session, portal.client_id)
        assert service.withdraw(db.session, user_id=provider.user_id(email), client=client) == 1
        db.session.commit()
    assert rp.get(provider.base + "/userinfo").status_code == 401
    url, _state, _ = provider.authorization_url(provider.rp(portal), prompt="none")
    assert browser.go(url).params["error"] == "consent_required"
    assert provider.audit("consent:grant:withdrawn")[0]["details"]["claims"]
