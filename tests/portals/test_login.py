"""Operator login: password, TOTP enrolment with QR code, replay refusal, throttling, logout."""

from __future__ import annotations

import pyotp

from servicekonto.audit.tags import AuditTag
from servicekonto.db import db
from servicekonto.portals.models import Operator
from tests.portals.conftest import (
    PASSWORD,
    audit_tags,
    login,
    make_operator,
    make_org,
    next_code,
    operator,
    password_step,
    secret_of,
)
from tests.support.forms import parse_forms


def test_login_page_form_contract(client):
    page = client.get("/operators/login")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    forms = parse_forms(html)
    assert len(forms) == 1 and forms[0]["method"] == "post"
    inputs = {i.get("name"): i for i in forms[0]["inputs"]}
    assert inputs["email"]["autocomplete"] == "username"
    assert inputs["password"]["autocomplete"] == "current-password"
    assert "csrf_token" in forms[0]["fields"]
    assert 'lang="de"' in html and "Anmeldung" in html
    assert "Operator login" in client.get("/operators/login?lang=en").get_data(as_text=True)


def test_first_login_enrols_totp_then_replay_is_refused(app, client):
    op_id = make_operator(app, make_org(app))
    email = operator(app, op_id).email
    response = password_step(client, email)
    assert response.status_code == 302
    code_url = response.headers["Location"]
    page = client.get(code_url)
    html = page.get_data(as_text=True)
    assert 'src="data:image/svg+xml;base64,' in html  # QR code made on the server
    secret = secret_of(app, op_id)
    assert secret and " ".join(secret[i:i + 4] for i in range(0, 32, 4)) in html
    assert operator(app, op_id).totp_secret_encrypted != secret  # stored encrypted
    code_input = [i for i in parse_forms(html)[0]["inputs"] if i.get("name") == "code"][0]
    assert code_input["autocomplete"] == "one-time-code"

    wrong = client.post(code_url, data={"csrf_token": parse_forms(html)[0]["fields"]
                                        ["csrf_token"], "code": "000000"})
    assert wrong.status_code == 200 and 'aria-invalid="true"' in wrong.get_data(as_text=True)
    assert operator(app, op_id).totp_confirmed_at is None

    code = pyotp.TOTP(secret).now()
    ok = client.post(code_url, data={"csrf_token": parse_forms(html)[0]["fields"]["csrf_token"],
                                     "code": code})
    assert ok.status_code == 302 and ok.headers["Location"].endswith("/operators/")
    assert operator(app, op_id).totp_confirmed_at is not None
    assert client.get("/operators/").status_code == 200
    tags = audit_tags(app)
    assert AuditTag.OPERATOR_TOTP_ENROLLED in tags and AuditTag.OPERATOR_LOGIN_SUCCESS in tags
    assert AuditTag.OPERATOR_LOGIN_FAILURE in tags

    # A second browser: the same code again is refused (replay), a fresh one works.
    other = app.test_client()
    code_url = password_step(other, email).headers["Location"]
    page = other.get(code_url).get_data(as_text=True)
    assert "data:image/svg+xml" not in page  # enrolled: no QR code any more
    token = parse_forms(page)[0]["fields"]["csrf_token"]
    replay = other.post(code_url, data={"csrf_token": token, "code": code})
    assert replay.status_code == 200
    assert other.get("/operators/").status_code == 302
    fresh = other.post(code_url, data={"csrf_token": token, "code": next_code(app, op_id)})
    assert fresh.status_code == 302


def test_session_is_rotated_and_logout_ends_it(app, client):
    op_id = make_operator(app, make_org(app))
    password_step(client, operator(app, op_id).email)
    before = client.get_cookie("sk_session")
    client.get("/operators/logout")
    login(client, app, op_id)
    after = client.get_cookie("sk_session")
    assert before is not None and after is not None and before.value != after.value
    page = client.get("/operators/logout").get_data(as_text=True)
    form = parse_forms(page)[0]
    assert client.post("/operators/logout", data=form["fields"]).status_code == 200
    assert client.get("/operators/").status_code == 302
    assert AuditTag.OPERATOR_LOGOUT in audit_tags(app)


def test_wrong_password_and_throttling(app, client):
    op_id = make_operator(app, make_org(app))
    email = operator(app, op_id).email
    first = password_step(client, email, "Unsinn-Kennwort-9")
    assert first.status_code == 200
    assert "Unsinn" not in first.get_data(as_text=True)
    statuses = [password_step(client, email, "Unsinn-Kennwort-9").status_code
                for _ in range(5)]
    assert 429 in statuses
    blocked = password_step(client, email, PASSWORD)  # even the right password waits now
    assert blocked.status_code == 429 and blocked.headers.get("Retry-After")
    tags = audit_tags(app)
    assert AuditTag.OPERATOR_LOGIN_LOCKED in tags
    assert tags.count(AuditTag.OPERATOR_LOGIN_FAILURE) >= 5


def test_unknown_and_disabled_operators_look_the_same(app, client):
    op_id = make_operator(app, make_org(app))
    with app.app_context():
        from servicekonto.portals.services import disable_operator

        disable_operator(db.session, db.session.get(Operator, op_id), actor="test")
        db.session.commit()
    disabled = password_step(client, operator(app, op_id).email)
    unknown = password_step(client, "niemand@musterstadt.de")
    assert disabled.status_code == unknown.status_code == 200


def test_code_page_needs_the_password_first(client):
    response = client.get("/operators/login/code")
    assert response.status_code == 302 and response.headers["Location"].endswith(
        "/operators/login")


def test_forged_csrf_is_refused(app, client):
    op_id = make_operator(app, make_org(app))
    response = client.post("/operators/login", data={"email": operator(app, op_id).email,
                                                     "password": PASSWORD,
                                                     "csrf_token": "forged"})
    assert response.status_code == 400


def test_protected_pages_send_to_login(client):
    response = client.get("/operators/")
    assert response.status_code == 302
    assert "/operators/login?next=" in response.headers["Location"]
    assert client.get("/admin/clients").status_code == 302


def test_operator_is_no_administrator(app, client):
    op_id = make_operator(app, make_org(app))
    login(client, app, op_id)
    assert client.get("/admin/clients").status_code == 403
