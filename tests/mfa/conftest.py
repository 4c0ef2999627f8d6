"""Helpers for the second-factor tests: citizens with an authenticator app enrolled through the
real console pages, codes computed like an app would (pyotp), the real login forms."""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from servicekonto.mfa import totp
from tests.accounts.conftest import PASSWORD, login, make_user, text  # noqa: F401
from tests.console.conftest import events, post_form  # noqa: F401
from tests.support.forms import parse_forms


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Cheap Argon2 parameters: the second factor is under test here, not the hash's cost."""
    return {"argon2_memory_kib": 1024, "argon2_time_cost": 1}


def manual_key(page_html: str) -> str:
    found = re.search(r'<code id="manual-key">([A-Z2-7 ]+)</code>', page_html)
    assert found, "no manual key on the page"
    return found.group(1).replace(" ", "")


def code_at(secret: str, offset_steps: int = 0) -> str:
    """The code an app shows ``offset_steps`` intervals from now."""
    return pyotp.TOTP(secret).at(time.time() + offset_steps * totp.INTERVAL)


def recovery_codes_of(page_html: str) -> list[str]:
    return re.findall(r"<li><code>([A-Z2-7]{4}(?:-[A-Z2-7]{4}){3})</code></li>", page_html)


class Enrolled:
    """A logged-in citizen with a confirmed authenticator app."""

    def __init__(self, user: Any, secret: str, recovery: list[str]) -> None:
        self.user = user
        self.secret = secret
        self.recovery = recovery
        self.used_offsets: set[int] = {0}

    def next_code(self) -> str:
        """A code not used before (the next time step: accepted as drift, no replay)."""
        offset = max(self.used_offsets) + 1
        assert offset <= totp.VALID_WINDOW, "no fresh code left in this time step"
        self.used_offsets.add(offset)
        return code_at(self.secret, offset)


def enrol(app: Flask, client: FlaskClient, user: Any = None, *, do_login: bool = True
          ) -> Enrolled:
    """Log in (password only), set up the app on /account/security/totp, confirm with a code."""
    user = user or make_user(app)
    if do_login:
        assert login(client, user.email).status_code == 302
    page = client.get("/account/security/totp")
    assert page.status_code == 200
    secret = manual_key(text(page))
    form = parse_forms(text(page))[-1]
    done = client.post("/account/security/totp",
                       data={**form["fields"], "code": code_at(secret)})
    assert done.status_code == 200, text(done)
    codes = recovery_codes_of(text(done))
    assert len(codes) == 10
    return Enrolled(user, secret, codes)


def second_factor(client: FlaskClient, code: str, *, kind: str = "totp"):  # noqa: ANN201
    """Submit the second-factor page's form for ``kind`` ("totp" or "recovery_code")."""
    page = client.get("/login/second-factor")
    assert page.status_code == 200, page.status_code
    forms = parse_forms(text(page))
    field = "code" if kind == "totp" else "recovery_code"
    form = next(f for f in forms if field in f["fields"])
    return client.post(form["action"], data={**form["fields"], field: code})


def forget_last_step(app: Flask, user_id: int) -> None:
    """As if the app's clock moved on: the next code is not a replay of the last one used."""
    from sqlalchemy import update

    from servicekonto.db import db
    from servicekonto.mfa.models import TotpFactor

    with app.app_context():
        db.session.execute(update(TotpFactor).where(TotpFactor.user_id == user_id)
                           .values(totp_last_step=None))
        db.session.commit()


def auth_of(client: FlaskClient) -> dict | None:
    with client.session_transaction() as sess:
        return sess.get("auth")


def enrol_direct(app: Flask, user_id: int) -> str:
    """Enrol an authenticator app through the services (for flows where the console pages are
    not under test); returns the seed. The confirmation used the code of "now"."""
    from servicekonto.accounts.models import User
    from servicekonto.db import db
    from servicekonto.mfa import services

    with app.test_request_context():
        user = db.session.get(User, user_id)
        secret = services.start_totp(db.session, user)
        assert services.confirm_totp(db.session, user, code_at(secret)) is not None
        db.session.commit()
    return secret
