"""Fixtures for the operator and administrator pages: organisations, operators, a full login
(password, then TOTP computed with pyotp from the secret read back through the service)."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from servicekonto.audit.models import AuditEvent
from servicekonto.db import db
from servicekonto.portals import services
from servicekonto.portals.models import Operator
from tests.support.forms import parse_forms, submit

PASSWORD = "Rathaus-Platz 1 Musterstadt"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Cheap Argon2 parameters: the flows are under test here, not the hash's cost."""
    return {"argon2_memory_kib": 1024, "argon2_time_cost": 1}


def make_org(app: Flask, name: str | None = None) -> int:
    with app.app_context():
        org = services.create_organisation(db.session, name or f"Stadt {secrets.token_hex(3)}",
                                           actor="test")
        db.session.commit()
        return org.id


def make_operator(app: Flask, org_id: int | None, *, admin: bool = False,
                  email: str | None = None) -> int:
    with app.app_context():
        from servicekonto.portals.models import Organisation

        org = db.session.get(Organisation, org_id) if org_id else None
        op = services.create_operator(
            db.session, email=email or f"op-{secrets.token_hex(4)}@musterstadt.de",
            name="Anna Amt", organisation=org, password=PASSWORD, admin=admin, actor="test")
        db.session.commit()
        return op.id


def operator(app: Flask, operator_id: int) -> Operator:
    with app.app_context():
        op = db.session.get(Operator, operator_id)
        db.session.expunge(op)
        return op


def secret_of(app: Flask, operator_id: int) -> str | None:
    with app.app_context():
        return services.totp_secret(db.session.get(Operator, operator_id))


def next_code(app: Flask, operator_id: int) -> str:
    """A valid code not used yet: the current step, or the next one after a used step."""
    secret = secret_of(app, operator_id)
    assert secret
    last = operator(app, operator_id).totp_last_step
    now = int(time.time() // 30)
    step = now if last is None or last < now else last + 1
    assert step <= now + 1, "no unused code within the accepted window"
    return pyotp.TOTP(secret).at(step * 30)


def password_step(client: FlaskClient, email: str, password: str = PASSWORD):  # noqa: ANN201
    return submit(client, "/operators/login", {"email": email, "password": password})


def login(client: FlaskClient, app: Flask, operator_id: int) -> None:
    email = operator(app, operator_id).email
    response = password_step(client, email)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert "/operators/login/code" in response.headers["Location"]
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    form = parse_forms(page.get_data(as_text=True))[0]
    done = client.post(response.headers["Location"],
                       data={**form["fields"], "code": next_code(app, operator_id)})
    assert done.status_code == 302, done.get_data(as_text=True)


def audit_tags(app: Flask) -> list[str]:
    with app.app_context():
        return [e.tag for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def audit_events(app: Flask, tag: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.tag == tag)
                                       .order_by(AuditEvent.id)))


def post_form(client: FlaskClient, url: str, data: dict, *, form_index: int = 0,
              action: str | None = None):  # noqa: ANN201
    """GET ``url``, take the CSRF token of form ``form_index``, POST ``data`` to its action."""
    page = client.get(url)
    assert page.status_code == 200, f"GET {url}: {page.status_code}"
    form = parse_forms(page.get_data(as_text=True))[form_index]
    return client.post(action or form["action"] or url, data={**form["fields"], **data})
