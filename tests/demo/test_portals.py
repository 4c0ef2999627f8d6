"""The demo portals end to end: single sign-on across both, single logout by back-channel."""

from __future__ import annotations

import json
import os
import stat
import time

import requests
from sqlalchemy import func, select

from demo.portals import BACKCHANNEL_EVENT
from tests.support.backchannel import wait_for_deliveries


def _wait_backchannel(app) -> None:  # noqa: ANN001
    wait_for_deliveries(app)


def test_start_page_offers_servicekonto_login(portals):
    page = requests.get(portals["hundesteuer"].url + "/", timeout=10)
    assert page.status_code == 200
    assert "Hundesteuer Musterstadt" in page.text
    assert "Mit Servicekonto anmelden" in page.text
    assert "Wohngeld Hessen" in requests.get(portals["wohngeld"].url + "/", timeout=10).text


def test_sso_across_portals_and_single_logout(app, portals, citizen, browser):
    hund, wohn = portals["hundesteuer"], portals["wohngeld"]

    # 1. log in at the first portal: password and consent at the provider
    page = browser.open(hund.url + "/anmelden", email=citizen)
    assert page.url == hund.url + "/meine-daten", page.text[:500]
    assert "/login" in browser.provider_pages
    assert "Erika" in page.text and "Mustermann" in page.text
    assert "Musterstadt" in page.text  # address from userinfo
    assert 'data-claim="sid"' in page.text  # the ID token's session id

    # 2. the second portal gets the citizen without a password (consent only)
    browser.provider_pages.clear()
    page = browser.open(wohn.url + "/anmelden")  # no e-mail given: a login page would stop us
    assert page.url == wohn.url + "/meine-daten", page.text[:500]
    assert "/login" not in browser.provider_pages
    assert "Erika" in page.text
    assert "Sie sind angemeldet" in browser.http.get(wohn.url + "/", timeout=10).text

    # 3. log out at the first portal: RP-initiated logout with id_token_hint, back to the portal
    action, fields = browser.form(hund.url + "/")
    page = browser.open(action, method="POST", data=fields)
    assert page.url.startswith(hund.url + "/abgemeldet"), page.url
    assert "Sie sind abgemeldet" in page.text
    assert "Die Rückmeldung" not in page.text  # state matched
    assert "Mit Servicekonto anmelden" in browser.http.get(hund.url + "/", timeout=10).text

    # 4. the back-channel logout ended the second portal's session too: reload shows it
    _wait_backchannel(app)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        start = browser.http.get(wohn.url + "/", timeout=10).text
        if "Mit Servicekonto anmelden" in start:
            break
        time.sleep(0.1)
    assert "Mit Servicekonto anmelden" in start
    assert "Sie sind angemeldet" not in start
    assert browser.http.get(wohn.url + "/meine-daten", allow_redirects=False,
                            timeout=10).status_code == 302
    # and the provider session is gone: logging in again asks for the password
    browser.provider_pages.clear()
    page = browser.open(wohn.url + "/anmelden")
    assert "/login" in browser.provider_pages


def _signed(app, claims, typ="logout+jwt"):  # noqa: ANN001, ANN201
    from joserfc import jwt

    from oidc.keys import signing_key

    with app.app_context():
        kid, key = signing_key("RS256")
        return jwt.encode({"alg": "RS256", "kid": kid, "typ": typ}, claims, key)


def _claims(app, portal, **changes):  # noqa: ANN001, ANN003, ANN201
    now = int(time.time())
    claims = {"iss": app.config["SERVICEKONTO"]["issuer"], "aud": portal.client_id,
              "iat": now, "exp": now + 120, "jti": os.urandom(8).hex(), "sub": "abc",
              "sid": "s1", "events": {BACKCHANNEL_EVENT: {}}}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_backchannel_endpoint_validates_the_logout_token(app, portals):
    hund = portals["hundesteuer"]
    url = hund.url + "/backchannel-logout"
    requests.get(hund.url + "/", timeout=10)

    def post(token):  # noqa: ANN001, ANN202
        return requests.post(url, data={"logout_token": token}, timeout=10)

    assert post("").status_code == 400
    assert post("not.a.jwt").status_code == 400
    bad = {
        "wrong audience": _claims(app, hund, aud="someone-else"),
        "wrong issuer": _claims(app, hund, iss="https://evil.example"),
        "nonce": _claims(app, hund, nonce="n"),
        "no event": _claims(app, hund, events={"other": {}}),
        "no sid or sub": _claims(app, hund, sid=None, sub=None),
        "old": _claims(app, hund, iat=int(time.time()) - 3600, exp=int(time.time()) - 3000),
    }
    for reason, claims in bad.items():
        response = post(_signed(app, claims))
        assert response.status_code == 400, reason
        assert response.json()["error"] == "invalid_request"
    assert post(_signed(app, _claims(app, hund), typ="JWT")).status_code == 400

    good = _signed(app, _claims(app, hund))
    response = post(good)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert post(good).status_code == 400  # replayed jti


def test_seeding_is_idempotent_and_private(app, tmp_path):
    from demo.seed import seed_demo_portals
    from oidc.models import Client
    from servicekonto.db import db

    instance = app.config["SERVICEKONTO"]["instance_path"]
    runner = app.test_cli_runner()
    first = runner.invoke(seed_demo_portals)
    assert first.exit_code == 0, first.output
    path = os.path.join(instance, "demo-portals.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    config = json.loads(open(path).read())  # noqa: SIM115
    assert set(config["portals"]) == {"hundesteuer", "wohngeld"}
    second = runner.invoke(seed_demo_portals)
    assert second.exit_code == 0, second.output
    assert json.loads(open(path).read()) == config  # noqa: SIM115
    with app.app_context():
        clients = db.session.scalars(select(Client).order_by(Client.id)).all()
        assert len(clients) == 2
        hund = next(c for c in clients if c.client_id ==
                    config["portals"]["hundesteuer"]["client_id"])
        assert hund.redirect_uris == ["http://127.0.0.1:5001/callback"]
        assert hund.backchannel_logout_uri == "http://127.0.0.1:5001/backchannel-logout"
        assert "http://127.0.0.1:5001/abgemeldet" in hund.post_logout_redirect_uris
        assert set(hund.scope.split()) == {"openid", "profile", "email", "address"}
        assert hund.token_endpoint_auth_method == "client_secret_basic"
        assert hund.client_secret_hash != config["portals"]["hundesteuer"]["client_secret"]
    os.remove(path)  # lost file: the clients are reused with new secrets, not duplicated
    third = runner.invoke(seed_demo_portals)
    assert third.exit_code == 0, third.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Client)) == 2
    renewed = json.loads(open(path).read())  # noqa: SIM115
    assert renewed["portals"]["hundesteuer"]["client_id"] == (
        config["portals"]["hundesteuer"]["client_id"])
    assert renewed["portals"]["hundesteuer"]["client_secret"] != (
        config["portals"]["hundesteuer"]["client_secret"])


def test_console_script_lists_the_commands_from_any_directory(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("servicekonto")
    result = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "seed-demo-portals" in result.stdout
    assert "logout" in result.stdout
    deliver = subprocess.run([str(script), "logout", "deliver", "--help"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60, check=False)
    assert deliver.returncode == 0 and "--all" in deliver.stdout
