"""Administrator pages: four eyes on data-access requests, approve/suspend/delete portals,
operators and organisations, initial access tokens, the record of processing."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets

from sqlalchemy import select

from oidc.models import Client, Token
from servicekonto.audit.models import AuditEvent
from servicekonto.audit.tags import AuditTag
from servicekonto.db import db, utcnow
from servicekonto.portals.models import DataAccessRequest, InitialAccessToken, Operator
from tests.portals.conftest import (
    PASSWORD,
    audit_events,
    audit_tags,
    login,
    make_operator,
    make_org,
    post_form,
)
from tests.portals.test_self_service import get_client, registered_portal
from tests.support.forms import csrf_token

BASIS = "DSGVO Art. 6 Abs. 1 lit. e i. V. m. § 3 HundStG"


def request_birthdate(client, client_id):  # noqa: ANN001, ANN201
    response = post_form(client, f"/operators/portals/{client_id}/data-access", {
        "want_birthdate": "y", "purpose_birthdate": "Volljährigkeit prüfen",
        "legal_basis_birthdate": BASIS})
    assert response.status_code == 302
    return response


def request_id(app, claim="birthdate"):  # noqa: ANN001, ANN201
    with app.app_context():
        return db.session.scalar(select(DataAccessRequest.id)
                                 .where(DataAccessRequest.claim == claim))


def decide(client, rid, action, note=""):  # noqa: ANN001, ANN201
    token = csrf_token(client.get("/operators/logout").get_data(as_text=True))
    return client.post(f"/admin/requests/{rid}/{action}", data={"csrf_token": token,
                                                                 "note": note})


def setup_portal_with_request(app):  # noqa: ANN001, ANN201
    """An admin who belongs to the organisation registers a portal and asks for birthdate."""
    org_id = make_org(app, "Stadt Musterstadt")
    requester = make_operator(app, org_id, admin=True)
    browser = app.test_client()
    login(browser, app, requester)
    client_id, _secret = registered_portal(app, browser)
    request_birthdate(browser, client_id)
    return browser, requester, client_id


def test_four_eyes_self_approval_refused_other_admin_approves(app):
    browser, requester, client_id = setup_portal_with_request(app)
    rid = request_id(app)
    page = browser.get("/admin/requests").get_data(as_text=True)
    assert "Sie haben dies selbst beantragt" in page
    refused = decide(browser, rid, "approve")
    assert refused.status_code == 403
    assert "Vier-Augen-Prinzip" in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(DataAccessRequest, rid).status == "pending"
    assert get_client(app, client_id).allowed_claims == []

    other_admin = make_operator(app, None, admin=True)
    second = app.test_client()
    login(second, app, other_admin)
    approved = decide(second, rid, "approve", "geprüft")
    assert approved.status_code == 302
    portal = get_client(app, client_id)
    assert portal.allowed_claims == ["birthdate"]
    assert "profile" in portal.scope.split()
    with app.app_context():
        row = db.session.get(DataAccessRequest, rid)
        assert (row.status, row.decided_by, row.decision_note) == ("approved", other_admin,
                                                                  "geprüft")
    again = decide(second, rid, "reject", "zu spät")
    assert again.status_code == 302  # already decided: a notice, nothing changes
    with app.app_context():
        assert db.session.get(DataAccessRequest, rid).status == "approved"
    events = audit_events(app, AuditTag.DATA_ACCESS_APPROVED)
    assert len(events) == 1 and json.loads(events[0].details)["claim"] == "birthdate"
    assert events[0].actor == f"operator:{other_admin}"


def test_reject_needs_a_note_and_records_it(app):
    browser, requester, client_id = setup_portal_with_request(app)
    rid = request_id(app)
    second = app.test_client()
    login(second, app, make_operator(app, None, admin=True))
    assert decide(second, rid, "reject", "").status_code == 302
    with app.app_context():
        assert db.session.get(DataAccessRequest, rid).status == "pending"
    assert decide(second, rid, "reject", "Keine Rechtsgrundlage erkennbar").status_code == 302
    with app.app_context():
        row = db.session.get(DataAccessRequest, rid)
        assert row.status == "rejected" and row.decision_note == "Keine Rechtsgrundlage erkennbar"
    assert get_client(app, client_id).allowed_claims == []
    assert AuditTag.DATA_ACCESS_REJECTED in audit_tags(app)
    assert decide(second, 99999, "approve").status_code == 404


def add_token(app, client_id):  # noqa: ANN001, ANN201
    with app.app_context():
        portal = db.session.scalar(select(Client).where(Client.client_id == client_id))
        db.session.add(Token(client_pk=portal.id, user_id=None,
                             access_token_hash=secrets.token_hex(32), scope="openid",
                             family_id=secrets.token_hex(8), grant_type="client_credentials",
                             access_expires_at=utcnow() + dt.timedelta(hours=1)))
        db.session.commit()


def test_approve_suspend_delete(app):
    org_id = make_org(app)
    browser = app.test_client()
    login(browser, app, make_operator(app, org_id))
    client_id, _secret = registered_portal(app, browser)

    admin = app.test_client()
    login(admin, app, make_operator(app, None, admin=True))
    listing = admin.get("/admin/clients?status=pending").get_data(as_text=True)
    assert client_id in listing
    assert client_id not in admin.get("/admin/clients?status=active").get_data(as_text=True)

    detail_url = f"/admin/clients/{client_id}"
    approved = post_form(admin, detail_url, {}, form_index=1,
                         action=f"/admin/clients/{client_id}/approve")
    assert approved.status_code == 302
    assert get_client(app, client_id).status == "active"
    assert AuditTag.CLIENT_APPROVED in audit_tags(app)

    add_token(app, client_id)
    suspended = post_form(admin, detail_url, {},
                          action=f"/admin/clients/{client_id}/suspend")
    assert suspended.status_code == 302
    assert get_client(app, client_id).status == "suspended"
    with app.app_context():
        assert all(t.revoked_at is not None for t in db.session.scalars(select(Token)))
    events = audit_events(app, AuditTag.CLIENT_SUSPENDED)
    assert events and json.loads(events[0].details)["tokens_revoked"] == 1

    forged = admin.post(f"/admin/clients/{client_id}/delete", data={"csrf_token": "x"})
    assert forged.status_code == 400 and get_client(app, client_id) is not None
    deleted = post_form(admin, f"/admin/clients/{client_id}/delete", {})
    assert deleted.status_code == 302 and get_client(app, client_id) is None
    with app.app_context():
        assert db.session.scalar(select(Token)) is None
        deleted_tags = [e.tag for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.client_id == client_id))]
    assert AuditTag.CLIENT_DELETED in deleted_tags
    assert admin.get(f"/admin/clients/{client_id}").status_code == 404


def test_admin_manages_organisations_and_operators(app):
    admin_id = make_operator(app, None, admin=True)
    admin = app.test_client()
    login(admin, app, admin_id)
    created = post_form(admin, "/admin/organisations", {"name": "Landkreis Beispiel"})
    assert created.status_code == 302
    duplicate = post_form(admin, "/admin/organisations", {"name": "Landkreis Beispiel"})
    assert duplicate.status_code == 200 and 'id="name-error"' in duplicate.get_data(as_text=True)
    page = admin.get("/admin/operators").get_data(as_text=True)
    org_value = re.search(r'<option value="(\d+)">Landkreis Beispiel</option>', page).group(1)
    made = post_form(admin, "/admin/operators", {
        "email": "bernd@landkreis.example.de", "name": "Bernd Beispiel",
        "organisation_id": org_value, "password": PASSWORD}, form_index=-1)
    assert made.status_code == 302
    with app.app_context():
        bernd = db.session.scalar(select(Operator).where(
            Operator.email == "bernd@landkreis.example.de"))
        assert bernd.organisation_id == int(org_value) and not bernd.is_admin
        bernd_id = bernd.id
    weak = post_form(admin, "/admin/operators", {
        "email": "c@landkreis.example.de", "name": "C", "organisation_id": org_value,
        "password": "passwort"}, form_index=-1)
    assert weak.status_code == 200 and 'id="password-error"' in weak.get_data(as_text=True)

    disabled = post_form(admin, "/admin/operators", {},
                         action=f"/admin/operators/{bernd_id}/disable")
    assert disabled.status_code == 302
    with app.app_context():
        assert db.session.get(Operator, bernd_id).disabled_at is not None
    own = post_form(admin, "/admin/operators", {},
                    action=f"/admin/operators/{admin_id}/disable")
    assert own.status_code == 403
    tags = audit_tags(app)
    assert AuditTag.ORGANISATION_CREATED in tags and AuditTag.OPERATOR_DISABLED in tags


def test_initial_token_issued_once_and_revoked(app):
    org_id = make_org(app, "Stadt Musterstadt")
    admin = app.test_client()
    login(admin, app, make_operator(app, None, admin=True))
    issued = post_form(admin, "/admin/initial-tokens", {
        "organisation_id": str(org_id), "scope": "openid profile", "uses": "3",
        "expires_days": "30"}, form_index=-1)
    assert issued.status_code == 200
    html = issued.get_data(as_text=True)
    plain = re.search(r'id="initial-token" type="text" readonly value="([^"]+)"', html).group(1)
    with app.app_context():
        row = db.session.scalar(select(InitialAccessToken))
        assert row.token_hash != plain and row.uses_left == 3
        token_id = row.id
    assert plain not in admin.get("/admin/initial-tokens").get_data(as_text=True)
    revoked = post_form(admin, "/admin/initial-tokens", {},
                        action=f"/admin/initial-tokens/{token_id}/revoke")
    assert revoked.status_code == 302
    with app.app_context():
        assert db.session.get(InitialAccessToken, token_id).revoked_at is not None
    assert any(t.startswith("client:initial_token:") for t in audit_tags(app))


def test_record_of_processing_json_and_html(app):
    browser, requester, client_id = setup_portal_with_request(app)
    rid = request_id(app)
    second = app.test_client()
    approver = make_operator(app, None, admin=True)
    login(second, app, approver)
    decide(second, rid, "approve")

    response = browser.get(f"/operators/portals/{client_id}/record.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    data = json.loads(response.get_data(as_text=True))
    assert data["portal"]["client_id"] == client_id
    assert data["portal"]["redirect_uris"][0] == "https://hund.musterstadt.de/callback"
    assert data["operator"]["organisation"] == "Stadt Musterstadt"
    assert data["allowed_claims"] == ["birthdate"]
    entry = data["data_access_requests"][0]
    assert entry["claim"] == "birthdate" and entry["legal_basis"] == BASIS
    assert entry["requested_by"]["id"] == requester and entry["decided_by"]["id"] == approver
    assert entry["decided_at"] and entry["requested_at"]

    page = browser.get(f"/operators/portals/{client_id}/record")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "HundStG" in html and "Stadt Musterstadt" in html
    assert "<script" not in html and "style=" not in html
    # administrators of any organisation may read it
    assert second.get(f"/operators/portals/{client_id}/record").status_code == 200
    assert second.get(f"/operators/portals/{client_id}/record.json").status_code == 200


def test_initial_token_form_errors(app):
    org_id = make_org(app)
    admin = app.test_client()
    login(admin, app, make_operator(app, None, admin=True))
    bad_scope = post_form(admin, "/admin/initial-tokens", {
        "organisation_id": str(org_id), "scope": "openid superpowers"}, form_index=-1)
    assert bad_scope.status_code == 200
    assert 'id="scope-error"' in bad_scope.get_data(as_text=True)
    zero = post_form(admin, "/admin/initial-tokens", {
        "organisation_id": str(org_id), "scope": "openid", "uses": "0"}, form_index=-1)
    assert 'id="uses-error"' in zero.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(InitialAccessToken)) is None
    assert admin.post("/admin/initial-tokens/999/revoke",
                      data={"csrf_token": csrf_token(admin.get("/admin/initial-tokens")
                                                     .get_data(as_text=True))}).status_code == 404
