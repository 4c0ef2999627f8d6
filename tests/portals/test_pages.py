"""Every operator and administrator page: German first, English on request, CSP-clean
(no inline script or style), labelled inputs; long input refused; allowed_claims semantics."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from oidc.clients import create_client
from oidc.models import Client
from servicekonto.db import db
from servicekonto.portals import services
from servicekonto.portals.models import DataAccessRequest, Operator
from tests.portals.conftest import login, make_operator, make_org, post_form
from tests.portals.test_self_service import registered_portal
from tests.support.forms import parse_forms


def _labelled(html: str) -> None:
    ids = set(re.findall(r'<label[^>]*for="([^"]+)"', html))
    for form in parse_forms(html):
        for attrs in form["inputs"]:
            if attrs.get("type") in ("hidden", "submit") or "readonly" in attrs:
                continue
            assert attrs.get("id") in ids, f"input without a label: {attrs}"


@pytest.mark.parametrize("lang, word", [("de", "Portale"), ("en", "Portals")])
def test_pages_render_clean_in_both_languages(app, lang, word):
    org_id = make_org(app)
    admin_id = make_operator(app, org_id, admin=True)
    browser = app.test_client()
    login(browser, app, admin_id)
    client_id, _secret = registered_portal(app, browser)
    urls = ["/operators/", "/operators/portals/new", f"/operators/portals/{client_id}",
            f"/operators/portals/{client_id}/edit", f"/operators/portals/{client_id}/secret",
            f"/operators/portals/{client_id}/data-access",
            f"/operators/portals/{client_id}/record", "/admin/clients",
            f"/admin/clients/{client_id}", f"/admin/clients/{client_id}/delete",
            "/admin/requests", "/admin/operators", "/admin/organisations",
            "/admin/initial-tokens", "/operators/logout"]
    browser.get(f"/operators/?lang={lang}")
    for url in urls:
        response = browser.get(url)
        html = response.get_data(as_text=True)
        assert response.status_code == 200, url
        assert f'<html lang="{lang}">' in html, url
        assert "<script" not in html and "style=" not in html, url
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        _labelled(html)
    assert word in browser.get("/admin/clients").get_data(as_text=True)


def test_over_long_purpose_refused(app, client):
    login(client, app, make_operator(app, make_org(app)))
    client_id, _secret = registered_portal(app, client)
    response = post_form(client, f"/operators/portals/{client_id}/data-access", {
        "want_email": "y", "purpose_email": "x" * 2001, "legal_basis_email": "§ 1"})
    assert response.status_code == 200
    assert 'id="purpose_email-error"' in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(DataAccessRequest)) is None


def test_approving_keeps_the_claims_a_cli_portal_had(app):
    """``allowed_claims`` None means every claim of its scopes: approving one more keeps them."""
    requester_id = make_operator(app, make_org(app))
    admin_id = make_operator(app, None, admin=True)
    with app.app_context():
        portal, _ = create_client(db.session, name="Alt", scope="openid email",
                                  redirect_uris=["https://alt.example.de/cb"])
        requester = db.session.get(Operator, requester_id)
        portal.organisation_id = requester.organisation_id
        [row] = services.request_access(db.session, portal, requester,
                                        {"phone_number": ("Rückruf", "Einwilligung")})
        services.approve_request(db.session, row, db.session.get(Operator, admin_id))
        db.session.commit()
        portal = db.session.scalar(select(Client).where(Client.id == portal.id))
        assert set(portal.allowed_claims) == {"email", "email_verified", "phone_number"}
        assert portal.scope.split() == ["openid", "email", "phone"]
