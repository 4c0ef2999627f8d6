"""Recovery codes, throttling of wrong codes, the pending step's limits, session limits per
level, and that an e-mail password reset does not bypass the second factor."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest

from servicekonto.accounts.trust_levels import LOA_SUBSTANTIAL
from servicekonto.audit import AuditTag
from servicekonto.mfa import factors
from tests.accounts.conftest import PASSWORD, audit_tags, login, path_of, text
from tests.mfa.conftest import (
    auth_of,
    code_at,
    enrol,
    events,
    forget_last_step,
    post_form,
    second_factor,
)
from tests.sessions.test_http import age, cookie_value, store_of
from tests.support.mailbox import body_of


def test_a_recovery_code_signs_in_once_and_is_mailed(app, client, outbox):
    enrolled = enrol(app, client)
    email = enrolled.user.email
    code = enrolled.recovery[3]
    browser = app.test_client()
    login(browser, email)
    # typed in lower case with spaces instead of hyphens: still accepted
    done = second_factor(browser, code.lower().replace("-", " "), kind="recovery_code")
    assert done.status_code == 302 and done.headers["Location"] == "/account"
    auth = auth_of(browser)
    assert auth["acr"] == LOA_SUBSTANTIAL and auth["amr"] == ["pwd", "otp"]
    used = events(app, str(AuditTag.ACCOUNT_RECOVERY_CODE_USED), enrolled.user.id)
    assert used[-1]["details"] == {"left": 9}
    assert code not in str(used)
    notice = outbox.wait_for(email, count=2)[-1]  # after the "factor added" mail
    assert "Wiederherstellungscode" in notice["Subject"]
    assert "noch 9 ungenutzte" in body_of(notice)
    # the same code never works again
    other = app.test_client()
    login(other, email)
    again = second_factor(other, code, kind="recovery_code")
    assert again.status_code == 400 and auth_of(other) is None
    assert "bereits verwendet" in text(again)
    # a code of another citizen does not work either
    stranger = enrol(app, app.test_client())
    assert second_factor(other, stranger.recovery[0], kind="recovery_code").status_code == 400
    assert second_factor(other, enrolled.recovery[4], kind="recovery_code").status_code == 302


def test_new_recovery_codes_need_the_password_and_replace_the_old(app, client, outbox):
    enrolled = enrol(app, client)
    wrong = post_form(client, "/account/security/recovery-codes",
                      {"current_password": "Falsches-Passwort-1"})
    assert wrong.status_code == 200 and "Das Passwort ist falsch." in text(wrong)
    done = post_form(client, "/account/security/recovery-codes",
                     {"current_password": PASSWORD})
    assert done.status_code == 200 and done.headers["Cache-Control"] == "no-store"
    new_codes = re.findall(r"<li><code>([A-Z2-7-]{19})</code></li>", text(done))
    assert len(new_codes) == 10 and not set(new_codes) & set(enrolled.recovery)
    browser = app.test_client()
    login(browser, enrolled.user.email)
    assert second_factor(browser, enrolled.recovery[0], kind="recovery_code").status_code == 400
    assert second_factor(browser, new_codes[0], kind="recovery_code").status_code == 302
    reasons = [e["details"]["reason"] for e in events(
        app, str(AuditTag.ACCOUNT_RECOVERY_CODES_CREATED), enrolled.user.id)]
    assert reasons == ["totp_enrolled", "regenerated"]


@pytest.mark.parametrize("settings_overrides", [{
    "argon2_memory_kib": 1024, "argon2_time_cost": 1, "login_account_failures": 3}])
def test_wrong_codes_count_against_the_login_throttle(app, client, outbox):
    enrolled = enrol(app, client)
    browser = app.test_client()
    login(browser, enrolled.user.email)
    assert second_factor(browser, "000000").status_code == 400
    assert second_factor(browser, "999999").status_code == 400
    locked = second_factor(browser, "123123")
    assert locked.status_code == 429
    # now even the right code is refused (no oracle while locked) ...
    assert second_factor(browser, enrolled.next_code()).status_code == 429
    assert auth_of(browser) is None
    # ... and the right password does not reset the counter
    fresh = app.test_client()
    assert login(fresh, enrolled.user.email).status_code == 429
    failures = events(app, str(AuditTag.ACCOUNT_LOGIN_FAILURE), enrolled.user.id)
    assert [f["details"]["reason"] for f in failures] == ["wrong_second_factor"] * 3
    assert events(app, str(AuditTag.ACCOUNT_LOGIN_LOCKED), enrolled.user.id)
    assert "vorübergehend gesperrt" in outbox.wait_for(enrolled.user.email, count=2)[-1][
        "Subject"]
    # the sign-in history names the wrong codes
    history = text(client.get("/account/sign-ins"))
    assert history.count("Fehlgeschlagen: falscher zweiter Faktor") == 3


@pytest.mark.parametrize("settings_overrides", [{
    "argon2_memory_kib": 1024, "argon2_time_cost": 1, "login_account_failures": 3}])
def test_knowing_the_password_does_not_reset_the_code_counter(app, client):
    enrolled = enrol(app, client)
    browser = app.test_client()
    for guess in ("000000", "999999"):
        login(browser, enrolled.user.email)  # a correct password each time
        assert second_factor(browser, guess).status_code == 400
    login(browser, enrolled.user.email)
    assert second_factor(browser, "123123").status_code == 429


def test_the_pending_step_expires_after_five_minutes(app, client):
    enrolled = enrol(app, client)
    browser = app.test_client()
    login(browser, enrolled.user.email)
    with browser.session_transaction() as sess:
        sess[factors.PENDING_KEY] = {**sess[factors.PENDING_KEY],
                                     "time": int(time.time()) - factors.PENDING_SECONDS - 1}
    page = browser.get("/login/second-factor")
    assert page.status_code == 302 and page.headers["Location"] == "/login"
    assert browser.get("/account").status_code == 302


def test_a_substantial_session_idles_out_after_30_minutes(app, client):
    enrolled = enrol(app, client)
    browser = app.test_client()
    login(browser, enrolled.user.email)
    second_factor(browser, enrolled.next_code())
    record = store_of(app).load(_key(browser))
    assert record.idle_seconds == 30 * 60
    assert record.expires_at - record.created_at == dt.timedelta(hours=2)
    age(app, browser, last_seen_at=dt.timedelta(minutes=29))
    assert browser.get("/account").status_code == 200
    age(app, browser, last_seen_at=dt.timedelta(minutes=31))
    assert browser.get("/account").status_code == 302


def test_a_substantial_session_ends_after_two_hours_a_basic_one_does_not(app, client):
    enrolled = enrol(app, client)  # ``client`` is a basic session (password only)
    browser = app.test_client()
    login(browser, enrolled.user.email)
    second_factor(browser, enrolled.next_code())
    for who in (browser, client):
        age(app, who, created_at=dt.timedelta(hours=2, minutes=1),
            expires_at=dt.timedelta(hours=2, minutes=1), last_seen_at=dt.timedelta(minutes=1))
    assert browser.get("/account").status_code == 302  # substantial: over
    assert client.get("/account").status_code == 200   # basic: 12 h
    age(app, client, last_seen_at=dt.timedelta(minutes=31))
    assert client.get("/account").status_code == 200   # basic idles out after 60 min only


def _key(client) -> str:  # noqa: ANN001
    from servicekonto.sessions.interface import hash_token

    return hash_token(cookie_value(client))


def test_a_password_reset_by_mail_keeps_the_second_factor(app, client, outbox):
    enrolled = enrol(app, client)
    email = enrolled.user.email
    forgot = app.test_client()
    post_form(forgot, "/password/forgot", {"email": email})
    mail = outbox.wait_for(email, count=2)[-1]
    body = body_of(mail)
    assert "zweiten Faktor nicht" in body
    link = re.search(r"https?://\S+/password/reset/\S+", body).group(0)
    page = forgot.get(path_of(link))
    assert "zweiten Faktor nicht" in text(page)
    done = post_form(forgot, path_of(link), {"password": "Neues-Passwort-2026!",
                                             "password_confirm": "Neues-Passwort-2026!"})
    assert "Ihr zweiter Faktor bleibt bestehen" in text(done)
    browser = app.test_client()
    response = login(browser, email, "Neues-Passwort-2026!")
    assert response.headers["Location"] == "/login/second-factor"
    assert auth_of(browser) is None
    forget_last_step(app, enrolled.user.id)
    assert second_factor(browser, code_at(enrolled.secret)).status_code == 302
    assert str(AuditTag.ACCOUNT_PASSWORD_RESET_COMPLETED) in audit_tags(app, enrolled.user.id)
