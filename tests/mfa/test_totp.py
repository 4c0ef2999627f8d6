"""Authenticator app (TOTP) for citizens: enrolment, confirmation, replay, drift, sign-in."""

from __future__ import annotations

from sqlalchemy import select

from servicekonto.accounts.trust_levels import LOA_LOW, LOA_SUBSTANTIAL
from servicekonto.audit import AuditTag
from servicekonto.db import db
from servicekonto.encryption import decrypt_secret
from servicekonto.mfa.models import TotpFactor
from tests.accounts.conftest import audit_tags, login, make_user, text
from tests.mfa.conftest import (
    auth_of,
    code_at,
    enrol,
    forget_last_step,
    manual_key,
    second_factor,
)
from tests.support.forms import parse_forms


def test_enrolment_page_shows_qr_and_key_and_an_accessible_code_input(app, client):
    user = make_user(app)
    login(client, user.email)
    page = client.get("/account/security/totp")
    assert page.status_code == 200
    html = text(page)
    assert 'src="data:image/svg+xml;base64,' in html
    assert page.headers["Cache-Control"] == "no-store"
    secret = manual_key(html)
    assert len(secret) == 32
    form = parse_forms(html)[-1]
    code = next(i for i in form["inputs"] if i.get("name") == "code")
    assert code["autocomplete"] == "one-time-code" and code["inputmode"] == "numeric"
    assert '<label class="label" for="code">' in html
    # the seed is stored encrypted (never in clear) and does not count before confirmation
    with app.app_context():
        row = db.session.scalar(select(TotpFactor).where(TotpFactor.user_id == user.id))
        assert row.confirmed_at is None and secret not in row.totp_secret_encrypted
        key = app.config["SERVICEKONTO"]["key_encryption_key"]
        assert decrypt_secret(key, f"citizen-totp:{user.id}",
                              row.totp_secret_encrypted).decode() == secret
    # reloading keeps the same seed (the citizen may have scanned it already)
    assert manual_key(text(client.get("/account/security/totp"))) == secret


def test_wrong_confirmation_code_is_refused_with_an_error_summary(app, client):
    user = make_user(app)
    login(client, user.email)
    page = client.get("/account/security/totp")
    secret = manual_key(text(page))
    form = parse_forms(text(page))[-1]
    wrong = str((int(code_at(secret)) + 1) % 1000000).zfill(6)
    response = client.post("/account/security/totp", data={**form["fields"], "code": wrong})
    assert response.status_code == 400
    assert 'class="error-summary"' in text(response) and 'aria-invalid="true"' in text(response)
    bad_format = client.post("/account/security/totp", data={**form["fields"], "code": "12ab"})
    assert bad_format.status_code == 400
    assert str(AuditTag.ACCOUNT_TOTP_ENROLLED) not in audit_tags(app, user.id)
    # still not a second factor: the next login needs the password only
    client.post("/logout", data={"csrf_token": form["fields"]["csrf_token"]})
    fresh = app.test_client()
    assert login(fresh, user.email).headers["Location"] == "/account"


def test_confirmed_enrolment_shows_ten_codes_once_mails_and_audits(app, client, outbox):
    enrolled = enrol(app, client)
    user = enrolled.user
    assert len(set(enrolled.recovery)) == 10
    tags = audit_tags(app, user.id)
    assert str(AuditTag.ACCOUNT_TOTP_ENROLLED) in tags
    assert str(AuditTag.ACCOUNT_RECOVERY_CODES_CREATED) in tags
    mail = outbox.wait_for(user.email)[-1]
    assert "zweiter Faktor" in mail["Subject"]
    security = text(client.get("/account/security"))
    assert "10 ungenutzte Wiederherstellungscodes" in security
    assert not any(code in security for code in enrolled.recovery)
    # the setup page does not offer a second app
    assert client.get("/account/security/totp").status_code == 303


def test_login_asks_for_the_code_before_logging_in(app, client):
    enrolled = enrol(app, client)
    browser = app.test_client()
    response = login(browser, enrolled.user.email)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login/second-factor"
    # not logged in during the pending step
    assert auth_of(browser) is None
    assert browser.get("/account").status_code == 302
    page = browser.get("/login/second-factor")
    html = text(page)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    inputs = {i.get("name"): i for f in parse_forms(html) for i in f["inputs"]}
    assert inputs["code"]["autocomplete"] == "one-time-code"
    assert inputs["code"]["inputmode"] == "numeric"
    assert "recovery_code" in inputs
    done = second_factor(browser, enrolled.next_code())
    assert done.status_code == 302 and done.headers["Location"] == "/account"
    auth = auth_of(browser)
    assert auth["acr"] == LOA_SUBSTANTIAL and auth["amr"] == ["pwd", "otp"]
    assert browser.get("/account").status_code == 200
    assert str(AuditTag.ACCOUNT_LOGIN_PASSWORD_VERIFIED) in audit_tags(app, enrolled.user.id)


def test_a_used_code_is_refused_and_drift_of_one_step_is_accepted(app, client):
    enrolled = enrol(app, client)  # used the code of "now"
    browser = app.test_client()
    login(browser, enrolled.user.email)
    replay = second_factor(browser, code_at(enrolled.secret, 0))
    assert replay.status_code == 400
    assert "bereits verwendet" in text(replay)
    assert auth_of(browser) is None
    # one step ahead (a phone clock 30 s fast) is fine
    assert second_factor(browser, code_at(enrolled.secret, 1)).status_code == 302
    # two steps away is not
    forget_last_step(app, enrolled.user.id)
    other = app.test_client()
    login(other, enrolled.user.email)
    assert second_factor(other, code_at(enrolled.secret, 3)).status_code == 400
    assert second_factor(other, code_at(enrolled.secret, -3)).status_code == 400
    assert second_factor(other, code_at(enrolled.secret, -1)).status_code == 302


def test_without_a_factor_login_stays_at_the_basic_level(app, client):
    user = make_user(app)
    assert login(client, user.email).headers["Location"] == "/account"
    auth = auth_of(client)
    assert auth["acr"] == LOA_LOW and auth["amr"] == ["pwd"]
    assert client.get("/login/second-factor").status_code == 302


def test_the_pages_speak_english_too(app, client):
    enrolled = enrol(app, client)
    security = text(client.get("/account/security?lang=en"))
    assert "Sign-in security" in security and "Remove authenticator app" in security
    browser = app.test_client()
    browser.get("/?lang=en")
    login(browser, enrolled.user.email)
    page = text(browser.get("/login/second-factor"))
    assert "Second step of your sign-in" in page and "Six-digit code from your app" in page
    wrong = second_factor(browser, "000000")
    assert "Please correct the following:" in text(wrong)
    assert "The code is wrong or has been used already." in text(wrong)
