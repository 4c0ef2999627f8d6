"""Disclosure log: entries after a real code flow and userinfo, filters, CSV and JSON export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

from tests.console.conftest import bc_portal, http_get
from tests.support.forms import parse_forms

LOW = "http://eidas.europa.eu/LoA/low"


def _flows(provider, receiver):  # noqa: ANN001, ANN202
    email = provider.citizen()
    browser = provider.browser()
    hund = bc_portal(provider, "Hundesteuer", receiver)
    wohn = bc_portal(provider, "Wohngeld", receiver, scope="openid email")
    token, _, _ = provider.login_flow(
        hund, browser, email, claims=json.dumps({"id_token": {"birthdate": None}}))
    userinfo = http_get(provider.base + "/userinfo",
                        headers={"Authorization": f"Bearer {token['access_token']}"})
    assert userinfo.status_code == 200
    provider.login_flow(wohn, browser)
    return browser, hund, wohn


def test_log_lists_every_release_with_claims_time_and_trust_level(provider, receiver):
    browser, hund, wohn = _flows(provider, receiver)
    page = browser.http.get(provider.base + "/account/disclosures")
    assert page.status_code == 200
    html = page.text
    assert "Datenweitergaben" in html and "3 Weitergaben" in html
    assert "Hundesteuer" in html and "Wohngeld" in html
    assert "Anschrift (<code>address</code>)" in html
    assert "Geburtsdatum (<code>birthdate</code>)" in html
    assert "bei der Anmeldung" in html and "vom Portal abgerufen" in html
    assert "Basis" in html
    [form] = [f for f in parse_forms(html) if f["method"].lower() == "get"]
    assert set(form["fields"]) == {"portal", "start", "end"}  # a GET filter, no CSRF


def test_export_json_and_csv(provider, receiver):
    browser, hund, wohn = _flows(provider, receiver)
    exported = browser.http.get(provider.base + "/account/disclosures.json")
    assert exported.status_code == 200
    assert exported.headers["Content-Type"].startswith("application/json")
    assert "attachment" in exported.headers["Content-Disposition"]
    rows = exported.json()["disclosures"]
    assert len(rows) == 3
    by_via = {(r["client_id"], r["via"]): r for r in rows}
    userinfo = by_via[(hund.client_id, "userinfo")]
    assert set(userinfo["claims"]) >= {"sub", "address", "email", "birthdate", "given_name"}
    assert userinfo["acr"] == LOW
    id_token = by_via[(hund.client_id, "id_token")]
    assert id_token["claims"] == ["sub", "birthdate"]
    assert id_token["acr"] == LOW  # from the token family (the release has no acr detail)
    assert by_via[(wohn.client_id, "id_token")]["portal"] == "Wohngeld"
    for row in rows:
        dt.datetime.fromisoformat(row["time"])
        assert "Mustermann" not in json.dumps(row)  # names of claims, never values

    as_csv = browser.http.get(provider.base + "/account/disclosures.csv")
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert len(table) == 3
    assert set(table[0]) == {"time", "client_id", "portal", "via", "claims", "acr"}
    assert {r["acr"] for r in table} == {LOW}


def test_filter_by_portal_and_period(provider, receiver):
    browser, hund, wohn = _flows(provider, receiver)
    base = provider.base + "/account/disclosures"
    only_wohn = browser.http.get(base + ".json", params={"portal": wohn.client_id}).json()
    assert [r["client_id"] for r in only_wohn["disclosures"]] == [wohn.client_id]
    page = browser.http.get(base, params={"portal": hund.client_id})
    assert "2 Weitergaben" in page.text
    assert f'<option selected value="{hund.client_id}">' in page.text or \
        f'<option value="{hund.client_id}" selected>' in page.text
    today = dt.date.today()
    tomorrow = (today + dt.timedelta(days=1)).isoformat()
    future = browser.http.get(base + ".json", params={"start": tomorrow}).json()
    assert future["disclosures"] == []
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    window = browser.http.get(base + ".csv", params={"start": yesterday, "end": tomorrow,
                                                     "portal": hund.client_id})
    assert len(list(csv.DictReader(io.StringIO(window.text)))) == 2
    # an end before the start: an error, the unfiltered list
    wrong = browser.http.get(base, params={"start": tomorrow, "end": yesterday})
    assert "Das Ende des Zeitraums darf nicht vor seinem Beginn liegen." in wrong.text
    assert 'class="error-summary"' in wrong.text
    # the export links carry the filter
    assert f"disclosures.csv?portal={hund.client_id}" in page.text


def test_another_citizens_releases_are_not_shown(provider, receiver):
    browser, hund, _ = _flows(provider, receiver)
    other = provider.browser()
    provider.login_flow(hund, other, provider.citizen())
    rows = other.http.get(provider.base + "/account/disclosures.json").json()["disclosures"]
    assert len(rows) == 1
