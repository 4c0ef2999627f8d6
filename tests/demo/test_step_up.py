"""The Wohngeld demo portal's "substantial" sign-in: step-up with an authenticator app."""

from __future__ import annotations

from urllib.parse import urljoin

import requests

from tests.mfa.conftest import code_at, enrol_direct
from tests.support.forms import parse_forms

SUBSTANTIAL = "http://eidas.europa.eu/LoA/substantial"


def test_substantial_button_steps_up_and_shows_acr_and_amr(app, portals, citizen, browser):
    wohn, hund = portals["wohngeld"], portals["hundesteuer"]
    start = requests.get(wohn.url + "/", timeout=10).text
    assert "/anmelden?niveau=substanziell" in start
    assert "niveau=substanziell" not in requests.get(hund.url + "/", timeout=10).text

    page = browser.open(wohn.url + "/anmelden", email=citizen)
    assert 'data-level="http://eidas.europa.eu/LoA/low"' in page.text
    assert "Vertrauensniveau „substanziell“ anfordern" in page.text

    from servicekonto.accounts.services import find_by_email
    from servicekonto.db import db

    with app.app_context():
        user_id = find_by_email(db.session, citizen).id
    secret = enrol_direct(app, user_id)
    page = browser.open(wohn.url + "/anmelden?niveau=substanziell")
    assert "/login/second-factor" in page.url, page.url
    form = next(f for f in parse_forms(page.text) if "code" in f["fields"])
    page = browser.open(urljoin(page.url, form["action"]), method="POST",
                        data={**form["fields"], "code": code_at(secret, 1)})
    assert page.url == wohn.url + "/meine-daten", page.text[:500]
    assert f'data-level="{SUBSTANTIAL}"' in page.text
    assert "substanziell (Passwort und zweiter Faktor)" in page.text
    assert "<code>pwd, otp</code>" in page.text
