"""Operator self-service: register a portal (pending, secret once), edit it, rotate its secret,
request personal data; other organisations' portals are refused."""

from __future__ import annotations

import re

from sqlalchemy import select

from oidc.models import Client
from servicekonto.audit.tags import AuditTag
from servicekonto.db import db
from servicekonto.portals.models import DataAccessRequest
from tests.portals.conftest import audit_tags, login, make_operator, make_org, post_form
from tests.support.forms import parse_forms

PORTAL = {
    "client_name": "Hundesteuer Musterstadt",
    "redirect_uris": "https://hund.musterstadt.de/callback\nhttps://hund.musterstadt.de/cb2",
    "post_logout_redirect_uris": "https://hund.musterstadt.de/",
    "backchannel_logout_uri": "https://hund.musterstadt.de/backchannel",
    "auth_method": "client_secret_basic",
    "subject_type": "pairwise",
}


def register(client, data=None):  # noqa: ANN001, ANN201
    return post_form(client, "/operators/portals/new", {**PORTAL, **(data or {})})


def get_client(app, client_id):  # noqa: ANN001, ANN201
    with app.app_context():
        found = db.session.scalar(select(Client).where(Client.client_id == client_id))
        if found is not None:
            db.session.expunge(found)
        return found


def registered_portal(app, client):  # noqa: ANN001, ANN201
    """Register PORTAL through the page; return (client_id, secret)."""
    response = register(client)
    assert response.status_code == 200, response.get_data(as_text=True)
    html = response.get_data(as_text=True)
    client_id = re.search(r'<code id="client-id">([^<]+)</code>', html).group(1)
    secret = re.search(r'id="client-secret" type="text" readonly value="([^"]+)"', html).group(1)
    return client_id, secret


def test_register_portal_pending_with_secret_shown_once(app, client):
    org_id = make_org(app, "Stadt Musterstadt")
    login(client, app, make_operator(app, org_id))
    page = client.get("/operators/portals/new").get_data(as_text=True)
    assert len(parse_forms(page)) == 1
    assert re.search(r'<label[^>]*for="redirect_uris"', page)
    client_id, secret = registered_portal(app, client)
    portal = get_client(app, client_id)
    assert portal.status == "pending" and portal.registered_via == "portal"
    assert portal.organisation_id == org_id and portal.operator == "Stadt Musterstadt"
    assert portal.check_client_secret(secret)
    assert portal.redirect_uris == ["https://hund.musterstadt.de/callback",
                                    "https://hund.musterstadt.de/cb2"]
    assert portal.backchannel_logout_uri == "https://hund.musterstadt.de/backchannel"
    overview = client.get("/operators/").get_data(as_text=True)
    assert "Hundesteuer Musterstadt" in overview and client_id in overview
    detail = client.get(f"/operators/portals/{client_id}").get_data(as_text=True)
    assert secret not in detail  # shown once only
    assert "wartet auf Freigabe" in detail
    assert AuditTag.CLIENT_REGISTERED in audit_tags(app)


def test_invalid_redirect_uri_shown_next_to_the_field(app, client):
    login(client, app, make_operator(app, make_org(app)))
    response = register(client, {"redirect_uris": "http://hund.musterstadt.de/cb#frag"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="redirect_uris-error"' in html and "error-summary" in html
    with app.app_context():
        assert db.session.scalar(select(Client)) is None  # nothing half-written


def test_over_long_fields_refused(app, client):
    login(client, app, make_operator(app, make_org(app)))
    response = register(client, {"client_name": "x" * 201})
    assert response.status_code == 200
    assert 'id="client_name-error"' in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Client)) is None


def test_edit_and_rotate_secret(app, client):
    login(client, app, make_operator(app, make_org(app)))
    client_id, secret = registered_portal(app, client)
    url = f"/operators/portals/{client_id}/edit"
    with app.app_context():  # once active, citizens' subjects depend on the sector
        db.session.scalar(select(Client).where(Client.client_id == client_id)).status = "active"
        db.session.commit()
    moved = post_form(client, url, {"redirect_uris": "https://anderswo.example.de/cb"})
    assert moved.status_code == 200
    assert 'id="redirect_uris-error"' in moved.get_data(as_text=True)  # pairwise sector kept
    saved = post_form(client, url, {"client_name": "Hundesteuer (neu)",
                                    "redirect_uris": "https://hund.musterstadt.de/neu",
                                    "backchannel_logout_uri": ""})
    assert saved.status_code == 302
    portal = get_client(app, client_id)
    assert portal.client_name == "Hundesteuer (neu)"
    assert portal.redirect_uris == ["https://hund.musterstadt.de/neu"]
    assert portal.backchannel_logout_uri is None

    rotated = post_form(client, f"/operators/portals/{client_id}/secret", {})
    html = rotated.get_data(as_text=True)
    new_secret = re.search(r'id="client-secret" type="text" readonly value="([^"]+)"',
                           html).group(1)
    portal = get_client(app, client_id)
    assert portal.check_client_secret(new_secret) and not portal.check_client_secret(secret)
    tags = audit_tags(app)
    assert AuditTag.CLIENT_UPDATED in tags and AuditTag.CLIENT_SECRET_ROTATED in tags


def test_data_access_request(app, client):
    login(client, app, make_operator(app, make_org(app)))
    client_id, _secret = registered_portal(app, client)
    url = f"/operators/portals/{client_id}/data-access"
    missing = post_form(client, url, {"want_birthdate": "y"})
    assert missing.status_code == 200
    assert 'id="purpose_birthdate-error"' in missing.get_data(as_text=True)
    nothing = post_form(client, url, {})
    assert nothing.status_code == 200 and "error-summary" in nothing.get_data(as_text=True)
    ok = post_form(client, url, {
        "want_birthdate": "y", "purpose_birthdate": "Prüfung der Volljährigkeit",
        "legal_basis_birthdate": "DSGVO Art. 6 Abs. 1 lit. e i. V. m. § 3 HundStG",
        "want_address": "y", "purpose_address": "Steuerbescheid",
        "legal_basis_address": "DSGVO Art. 6 Abs. 1 lit. e i. V. m. § 5 HundStG"})
    assert ok.status_code == 302
    with app.app_context():
        rows = list(db.session.scalars(select(DataAccessRequest).order_by(DataAccessRequest.id)))
    assert [(r.claim, r.status) for r in rows] == [("birthdate", "pending"),
                                                    ("address", "pending")]
    assert "HundStG" in rows[0].legal_basis
    page = client.get(url).get_data(as_text=True)
    assert 'name="want_birthdate"' not in page  # not twice
    assert AuditTag.DATA_ACCESS_REQUESTED in audit_tags(app)


def test_other_organisation_is_refused(app, client):
    login(client, app, make_operator(app, make_org(app)))
    client_id, _secret = registered_portal(app, client)
    other = app.test_client()
    login(other, app, make_operator(app, make_org(app)))
    for url in (f"/operators/portals/{client_id}", f"/operators/portals/{client_id}/edit",
                f"/operators/portals/{client_id}/secret",
                f"/operators/portals/{client_id}/data-access",
                f"/operators/portals/{client_id}/record",
                f"/operators/portals/{client_id}/record.json"):
        assert other.get(url).status_code == 403, url
    assert other.get("/operators/portals/unknown-id").status_code == 404
    assert client_id not in other.get("/operators/").get_data(as_text=True)


def test_forged_csrf_on_registration(app, client):
    login(client, app, make_operator(app, make_org(app)))
    response = client.post("/operators/portals/new", data={**PORTAL, "csrf_token": "x"})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(Client)) is None
