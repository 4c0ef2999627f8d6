"""Fixtures and helpers for the account flow tests (everything through HTTP and real SMTP)."""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from servicekonto.accounts.models import User
from servicekonto.accounts.services import create_user
from servicekonto.audit.models import AuditEvent
from servicekonto.db import db
from tests.support.forms import parse_forms, submit

PASSWORD = "Kastanien-Allee 17b"
COOKIE = "sk_session"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Cheap Argon2 parameters: the flows are under test here, not the hash's cost."""
    return {"argon2_memory_kib": 1024, "argon2_time_cost": 1}


def unique_email(prefix: str = "citizen") -> str:
    return f"{prefix}-{secrets.token_hex(5)}@example.de"


def make_user(app: Flask, email: str | None = None, *, password: str = PASSWORD,
              verified: bool = True, locale: str = "de", **names: str) -> User:
    with app.app_context():
        user = create_user(db.session, email=email or unique_email(), password=password,
                           given_name=names.get("given_name", "Erika"),
                           family_name=names.get("family_name", "Mustermann"),
                           verified=verified, actor="test", locale=locale)
        db.session.commit()
        return user


def get_user(app: Flask, user_id: int) -> User | None:
    with app.app_context():
        return db.session.get(User, user_id)


def audit_tags(app: Flask, user_id: int | None = None) -> list[str]:
    with app.app_context():
        stmt = select(AuditEvent).order_by(AuditEvent.id)
        if user_id is not None:
            stmt = stmt.where(AuditEvent.subject_user_id == user_id)
        return [e.tag for e in db.session.scalars(stmt)]


def audit_events(app: Flask) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def login(client: FlaskClient, email: str, password: str = PASSWORD, url: str = "/login"):
    return submit(client, url, {"email": email, "password": password})


def session_cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie(COOKIE)
    return cookie.value if cookie else None


def text(response) -> str:  # noqa: ANN001
    return response.get_data(as_text=True)


def h1(response) -> str:  # noqa: ANN001
    found = re.search(r"<h1[^>]*>(.*?)</h1>", text(response), re.S)
    return found.group(1).strip() if found else ""


def path_of(link: str) -> str:
    """The path of an absolute link from a mail (the test client speaks to the app directly)."""
    return re.sub(r"^https?://[^/]+", "", link)


def form_of(response, index: int = 0) -> dict:  # noqa: ANN001
    return parse_forms(text(response))[index]
