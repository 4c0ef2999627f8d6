"""Connected portals: the list, withdrawing a whole consent or single pieces of data (tokens
revoked, back-channel logout delivered, consent asked again)."""

from __future__ import annotations

from sqlalchemy import select

from oidc.models import Client
from servicekonto.consent import service as consent_service
from servicekonto.db import db
from tests.console.conftest import (
    bc_portal,
    browser_post,
    events,
    logout_claims,
    userinfo_status,
    wait_deliveries,
)
from tests.support.forms import parse_forms


def _consent(provider, email, client_id):  # noqa: ANN001, ANN202
    with provider.app.app_context():
        client = db.session.scalar(select(Client).where(Client.client_id == client_id))
        consent = consent_service.load(db.session, provider.user_id(email), client.id)
        return (sorted(consent.granted_scopes), sorted(consent.granted_claims))


def test_list_shows_every_portal_with_data_in_plain_german(provider, receiver):
    email = provider.citizen()
    browser = provider.browser()
    hund = bc_portal(provider, "Hundesteuer", receiver, operator="Stadt Musterstadt")
    wohn = bc_portal(provider, "Wohngeld", receiver, scope="openid")
    provider.login_flow(hund, browser, email)
    provider.login_flow(wohn, browser)
    page = browser.http.get(provider.base + "/account/portals")
    assert page.status_code == 200
    html = page.text
    assert "Verbundene Portale" in html
    assert "Hundesteuer" in html and "Wohngeld" in html and "Stadt Musterstadt" in html
    for label in ("Vor- und Nachname", "Geburtsdatum", "E-Mail-Adresse", "Anschrift"):
        assert label in html
    assert "Nur Anmeldung, keine persönlichen Daten." in html  # Wohngeld: openid only
    assert "Einwilligung erteilt" in html
    # links only (GET confirmation pages), no POST forms on the list
    assert [f for f in parse_forms(html) if f["method"].lower() == "post"] == []


def test_withdrawing_a_whole_portal(provider, receiver):
    email = provider.citizen()
    browser = provider.browser()
    hund = bc_portal(provider, "Hundesteuer", receiver)
    wohn = bc_portal(provider, "Wohngeld", receiver)
    token, _, _ = provider.login_flow(hund, browser, email)
    other, _, _ = provider.login_flow(wohn, browser)
    assert userinfo_status(provider, token) == 200
    sub = provider.id_claims(token["id_token"])["sub"]

    confirm = browser.http.get(provider.base + f"/account/portals/{hund.client_id}/withdraw")
    assert "Ja, Einwilligung widerrufen" in confirm.text
    response = browser_post(browser, f"/account/portals/{hund.client_id}/withdraw")
    assert response.status_code == 303
    wait_deliveries(provider)

    assert userinfo_status(provider, token) == 401
    assert userinfo_status(provider, other) == 200  # the other portal keeps its tokens
    [item] = receiver.received
    assert item["portal"] == "Hundesteuer"
    claims = logout_claims(provider, item)
    assert claims["sub"] == sub and "sid" not in claims
    [event] = events(provider.app, "consent:grant:withdrawn")
    assert event["client_id"] == hund.client_id
    assert "address" in event["details"]["claims"] and event["details"]["tokens_revoked"] >= 1
    assert _consent(provider, email, hund.client_id) == ([], [])
    listed = browser.http.get(provider.base + "/account/portals").text
    assert "Sie haben Ihre Einwilligung für Hundesteuer widerrufen." in listed  # the notice
    assert listed.count("Hundesteuer") == 1 and "Wohngeld" in listed
    # the next sign-in asks for consent again
    rp = provider.rp(hund)
    url, _, _ = provider.authorization_url(rp, nonce="n")
    landing = browser.go(url, consent=None)
    assert parse_forms(landing.response.text)[0]["action"].endswith("/authorize/consent")


def test_withdrawing_a_single_piece_of_data(provider, receiver):
    email = provider.citizen()
    browser = provider.browser()
    hund = bc_portal(provider, "Hundesteuer", receiver)
    token, _, _ = provider.login_flow(hund, browser, email)
    assert "address" in http_userinfo(provider, token)

    page = browser.http.get(provider.base
                            + f"/account/portals/{hund.client_id}/withdraw?data=address")
    assert "Hundesteuer erhält nicht mehr: Anschrift." in page.text
    response = browser_post(browser, f"/account/portals/{hund.client_id}/withdraw?data=address")
    assert response.status_code == 303
    wait_deliveries(provider)

    assert userinfo_status(provider, token) == 401
    assert len(receiver.received) == 1
    scopes, claims = _consent(provider, email, hund.client_id)
    assert "address" not in claims and "address" not in scopes
    assert "email" in claims and "profile" in scopes and "openid" in scopes
    [event] = events(provider.app, "consent:grant:withdrawn")
    assert event["details"]["claims"] == ["address"]
    assert event["details"]["partial"] is True
    # still connected, without the address
    listed = browser.http.get(provider.base + "/account/portals").text
    assert "Hundesteuer" in listed and "data=address" not in listed
    # asking for the address again shows the consent page; without it: no consent page
    rp = provider.rp(hund)
    url, _, _ = provider.authorization_url(rp, nonce="n")
    landing = browser.go(url, consent=None)
    assert parse_forms(landing.response.text)[0]["action"].endswith("/authorize/consent")
    again, _, _ = provider.login_flow(hund, browser, scope="openid profile email")
    assert "address" not in http_userinfo(provider, again)


def test_withdrawing_unknown_portal_or_data_is_404(provider, receiver):
    email = provider.citizen()
    browser = provider.browser()
    hund = bc_portal(provider, "Hundesteuer", receiver, scope="openid email")
    provider.login_flow(hund, browser, email)
    base = provider.base + "/account/portals"
    assert browser.http.get(base + "/nope/withdraw").status_code == 404
    assert browser.http.get(base + f"/{hund.client_id}/withdraw?data=address").status_code == 404
    # POST without CSRF token is refused
    assert browser.http.post(base + f"/{hund.client_id}/withdraw").status_code == 400


def http_userinfo(provider, token):  # noqa: ANN001, ANN201
    from tests.console.conftest import http_get

    response = http_get(provider.base + "/userinfo",
                        headers={"Authorization": f"Bearer {token['access_token']}"})
    assert response.status_code == 200
    return response.json()
