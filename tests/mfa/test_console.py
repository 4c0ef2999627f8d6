"""The console's security page: removal rules, the administrator's reset (CLI), the data
export and account deletion."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from servicekonto.accounts.trust_levels import LOA_LOW, LOA_SUBSTANTIAL
from servicekonto.audit import AuditTag
from servicekonto.db import db
from servicekonto.mfa.models import RecoveryCode, TotpFactor
from tests.accounts.conftest import PASSWORD, audit_tags, login, make_user, text
from tests.mfa.conftest import auth_of, enrol, events, post_form, second_factor
from tests.oidc.conftest import cli  # noqa: F401 - the console-script fixture
from tests.support.forms import parse_forms
from tests.support.mailbox import body_of


def _rows(app, model, user_id: int) -> int:  # noqa: ANN001
    with app.app_context():
        return db.session.scalar(select(func.count(model.id)).where(model.user_id == user_id))


def test_security_page_lists_the_app_and_offers_step_up(app, client):
    enrol(app, client)
    page = text(client.get("/account/security"))
    assert "Authenticator-App entfernen" in page
    assert "noch nicht mit einem zweiten Faktor bestätigt" in page
    assert 'aria-current="page"' in page and "Anmeldesicherheit" in page


def test_removing_the_last_factor_needs_a_session_that_proved_it(app, client, outbox):
    enrolled = enrol(app, client)  # this session: password only (acr low)
    assert auth_of(client)["acr"] == LOA_LOW
    page = client.get("/account/security/totp/remove")
    assert page.status_code == 200
    assert "letzter zweiter Faktor" in text(page)
    assert "current_password" not in text(page)  # no removal form, only the step-up
    # posting anyway changes nothing
    token = parse_forms(text(page))[0]["fields"]["csrf_token"]
    client.post("/account/security/totp/remove",
                data={"csrf_token": token, "current_password": PASSWORD})
    assert _rows(app, TotpFactor, enrolled.user.id) == 1

    # step up from the removal page: second factor, then back to it
    form = parse_forms(text(page))[0]
    started = client.post(form["action"], data=form["fields"])
    assert started.headers["Location"] == "/login/second-factor"
    done = second_factor(client, enrolled.next_code())
    assert done.headers["Location"] == "/account/security/totp/remove"
    assert auth_of(client)["acr"] == LOA_SUBSTANTIAL
    assert auth_of(client)["amr"] == ["pwd", "otp"]
    assert str(AuditTag.ACCOUNT_STEP_UP) in audit_tags(app, enrolled.user.id)

    wrong = post_form(client, "/account/security/totp/remove",
                      {"current_password": "Falsches-Passwort-1"})
    assert wrong.status_code == 200 and "Das Passwort ist falsch." in text(wrong)
    assert _rows(app, TotpFactor, enrolled.user.id) == 1
    removed = post_form(client, "/account/security/totp/remove",
                        {"current_password": PASSWORD})
    assert removed.status_code == 303
    assert _rows(app, TotpFactor, enrolled.user.id) == 0
    assert _rows(app, RecoveryCode, enrolled.user.id) == 0  # nothing left to recover
    assert str(AuditTag.ACCOUNT_TOTP_REMOVED) in audit_tags(app, enrolled.user.id)
    mail = outbox.wait_for(enrolled.user.email, count=2)[-1]
    assert "entfernt" in mail["Subject"] and "Authenticator-App" in body_of(mail)
    # the next sign-in needs the password only
    assert login(app.test_client(), enrolled.user.email).headers["Location"] == "/account"


def test_a_step_up_is_void_once_someone_else_signs_in(app, client):
    enrol(app, client)
    assert client.post("/account/security/confirm", data={}).status_code == 400  # CSRF
    page = client.get("/account/security")
    form = next(f for f in parse_forms(text(page)) if f["action"] == "/account/security/confirm")
    assert client.post(form["action"], data=form["fields"]).status_code == 303
    assert client.get("/login/second-factor").status_code == 200
    other = make_user(app)  # no second factor
    assert login(client, other.email, url="/login?reauth=1").status_code == 302
    assert client.get("/login/second-factor").status_code == 302
    assert auth_of(client)["acr"] == LOA_LOW


def test_administrator_resets_the_factors_from_the_cli(app, client, cli, outbox):  # noqa: F811
    enrolled = enrol(app, client)
    result = cli("users", "reset-second-factors", enrolled.user.email.upper())
    assert result.returncode == 0, result.stderr
    # every registered kind is listed (passkeys too, when that package is in the app)
    line = result.stdout.strip()
    assert line.startswith(f"user {enrolled.user.id}: second factors removed (totp: 1, ")
    assert line.endswith("recovery_codes: 10)")
    assert _rows(app, TotpFactor, enrolled.user.id) == 0
    assert _rows(app, RecoveryCode, enrolled.user.id) == 0
    reset = events(app, str(AuditTag.ACCOUNT_SECOND_FACTORS_RESET), enrolled.user.id)
    assert reset[-1]["actor"] == "cli"
    removed = reset[-1]["details"]["removed"]
    assert removed[0] == {"kind": "totp", "count": 1}
    assert removed[-1] == {"kind": "recovery_codes", "count": 10}
    assert all(r["count"] == 0 for r in removed[1:-1])  # other kinds (passkeys): none
    mail = outbox.wait_for(enrolled.user.email, count=2)[-1]
    assert "entfernt" in mail["Subject"] and "/account/security" in body_of(mail)
    assert login(app.test_client(), enrolled.user.email).headers["Location"] == "/account"
    unknown = cli("users", "reset-second-factors", "nobody@example.de")
    assert unknown.returncode == 1 and "no account with e-mail" in unknown.stderr


def test_export_lists_factors_without_secrets_and_deletion_removes_them(app, client):
    enrolled = enrol(app, client)
    browser = app.test_client()
    login(browser, enrolled.user.email)
    second_factor(browser, enrolled.recovery[0], kind="recovery_code")
    export = browser.get("/account/data/export.json")
    data = json.loads(export.get_data(as_text=True))
    factors = data["second_factors"]
    assert [f["kind"] for f in factors["factors"]] == ["totp"]
    assert factors["factors"][0]["created_at"] and factors["factors"][0]["last_used_at"]
    assert factors["recovery_codes"]["unused"] == 9
    assert len(factors["recovery_codes"]["used_at"]) == 1
    raw = export.get_data(as_text=True)
    with app.app_context():
        row = db.session.scalar(select(TotpFactor).where(TotpFactor.user_id == enrolled.user.id))
        hashes = list(db.session.scalars(select(RecoveryCode.code_hash)))
    assert enrolled.secret not in raw and row.totp_secret_encrypted not in raw
    assert not any(h in raw for h in hashes) and enrolled.recovery[1] not in raw

    deleted = post_form(browser, "/account/delete", {"current_password": PASSWORD,
                                                     "confirm": "y"})
    assert deleted.status_code == 200
    assert _rows(app, TotpFactor, enrolled.user.id) == 0
    assert _rows(app, RecoveryCode, enrolled.user.id) == 0
