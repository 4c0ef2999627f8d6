"""Passkey tests: citizens logged in through the real forms, a software authenticator that
answers the server's real options. (The browser test is tests/browser/test_passkeys.py, on the
browser suite's fixtures.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from servicekonto.db import db
from servicekonto.passkeys.models import Passkey
from tests.accounts.conftest import PASSWORD, login, make_user, text  # noqa: F401
from tests.console.conftest import events, post_form  # noqa: F401
from tests.support.authenticator import SoftAuthenticator
from tests.support.forms import csrf_token, parse_forms

ORIGIN = "http://localhost"  # the test settings' issuer


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Cheap Argon2 parameters: passkeys are under test here, not the hash's cost."""
    return {"argon2_memory_kib": 1024, "argon2_time_cost": 1}


@pytest.fixture
def token() -> SoftAuthenticator:
    return SoftAuthenticator(ORIGIN)


@pytest.fixture
def citizen(app: Flask, client: FlaskClient):  # noqa: ANN201
    """A verified citizen, logged in with the test client."""
    user = make_user(app)
    response = login(client, user.email)
    assert response.status_code in (302, 303), text(response)
    return user


def options(client: FlaskClient, page_url: str, options_url: str):  # noqa: ANN201
    """What passkeys.js does: POST the options URL with the page's CSRF token."""
    token = csrf_token(text(client.get(page_url, follow_redirects=True)))
    return client.post(options_url, headers={"X-CSRFToken": token,
                                              "Accept": "application/json"})


def _passkey_form(page) -> dict:  # noqa: ANN001
    forms = [f for f in parse_forms(text(page)) if "credential" in f["fields"]]
    assert forms, text(page)
    return forms[0]


def post_credential(client: FlaskClient, page_url: str, answer: dict | str | None):  # noqa: ANN201
    """Submit the page's passkey form with the authenticator's answer (JSON)."""
    page = client.get(page_url)
    form = _passkey_form(page)
    value = answer if isinstance(answer, str) or answer is None else json.dumps(answer)
    return client.post(form["action"] or page_url,
                       data={**form["fields"], "credential": value or ""})


def confirm_password(client: FlaskClient, name: str = "Laptop", password: str = PASSWORD):  # noqa: ANN201
    return post_form(client, "/account/passkeys/new",
                     {"name": name, "current_password": password})


def register_options(client: FlaskClient):  # noqa: ANN201
    return options(client, "/account/passkeys/new/create", "/account/passkeys/new/options")


def add_passkey(client: FlaskClient, token: SoftAuthenticator, name: str = "Laptop"):  # noqa: ANN201
    """The whole console flow: password, options, create, submit. Returns the last response."""
    confirmed = confirm_password(client, name)
    assert confirmed.status_code == 303, text(confirmed)
    offered = register_options(client)
    assert offered.status_code == 200, offered.get_data(as_text=True)
    return post_credential(client, "/account/passkeys/new/create",
                           token.create(offered.get_data(as_text=True)))


def stored(app: Flask, user_id: int) -> list[Passkey]:
    with app.app_context():
        rows = list(db.session.scalars(select(Passkey).where(Passkey.user_id == user_id)
                                       .order_by(Passkey.id)))
        db.session.expunge_all()
        return rows
