"""Profile: edit with validation, autocomplete attributes, audit of changed field names."""

from __future__ import annotations

import datetime as dt

from servicekonto.accounts.models import User
from servicekonto.db import db
from tests.console.conftest import events, login, make_user, post_form, text
from tests.support.forms import parse_forms


def _user(app, user_id):  # noqa: ANN001, ANN202
    with app.app_context():
        return db.session.get(User, user_id)


def test_profile_form_is_accessible_and_prefilled(app, client):
    user = make_user(app)
    login(client, user.email)
    page = client.get("/account/profile")
    assert page.status_code == 200
    html = text(page)
    form = parse_forms(html)[-1]
    autocomplete = {i.get("name"): i.get("autocomplete") for i in form["inputs"]}
    assert autocomplete == {
        "csrf_token": None, "given_name": "given-name", "family_name": "family-name",
        "birthdate": "bday", "street_address": "street-address", "postal_code": "postal-code",
        "locality": "address-level2", "country": "country", "phone_number": "tel"}
    for name in ("given_name", "family_name", "birthdate", "postal_code", "phone_number"):
        assert f'<label class="label" for="{name}"' in html
    assert form["fields"]["given_name"] == "Erika"
    assert form["fields"]["country"] == "DE"
    assert "<script" not in html and "style=" not in html
    assert "Persönliche Angaben" in html  # German first


def test_profile_edit_saves_and_audits_field_names(app, client):
    user = make_user(app)
    login(client, user.email)
    response = post_form(client, "/account/profile", {
        "given_name": "Erika", "family_name": "Musterfrau", "birthdate": "1964-08-12",
        "street_address": "Heidestraße 17", "postal_code": "65185", "locality": "Wiesbaden",
        "country": "de", "phone_number": "+49 (611) 123-4567"}, index=-1)
    assert response.status_code == 303
    saved = _user(app, user.id)
    assert saved.family_name == "Musterfrau"
    assert saved.birthdate == dt.date(1964, 8, 12)
    assert saved.country == "DE" and saved.postal_code == "65185"
    assert saved.phone_number == "+49 611 1234567"
    [event] = events(app, "account:profile:updated", user.id)
    assert sorted(event["details"]["fields"]) == sorted([
        "family_name", "birthdate", "street_address", "postal_code", "locality", "country",
        "phone_number"])
    assert "Musterfrau" not in str(event) and "65185" not in str(event)
    # nothing changed: no second event
    post_form(client, "/account/profile", {}, index=-1)
    assert len(events(app, "account:profile:updated", user.id)) == 1


def test_profile_validation_errors(app, client):
    user = make_user(app)
    login(client, user.email)
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    response = post_form(client, "/account/profile", {
        "given_name": "", "birthdate": tomorrow, "postal_code": "6518",
        "country": "DE", "phone_number": "0611 12345", "locality": "x" * 101}, index=-1)
    assert response.status_code == 200
    html = text(response)
    assert 'class="error-summary"' in html
    assert "Bitte füllen Sie dieses Feld aus." in html
    assert "Das Geburtsdatum muss in der Vergangenheit liegen." in html
    assert "fünf Ziffern" in html
    assert "internationalen Format" in html
    assert 'aria-invalid="true"' in html
    assert _user(app, user.id).given_name == "Erika"
    bad_date = post_form(client, "/account/profile", {"birthdate": "12.08.1964"}, index=-1)
    assert "gültiges Datum" in text(bad_date)


def test_foreign_postal_codes_are_allowed(app, client):
    user = make_user(app)
    login(client, user.email)
    response = post_form(client, "/account/profile", {
        "postal_code": "SW1A 1AA", "country": "GB", "locality": "London"}, index=-1)
    assert response.status_code == 303
    assert _user(app, user.id).postal_code == "SW1A 1AA"
    assert post_form(client, "/account/profile", {"postal_code": "1010", "country": "AT"},
                     index=-1).status_code == 303
    bad = post_form(client, "/account/profile", {"country": "Deutschland"}, index=-1)
    assert bad.status_code == 200


def test_console_pages_need_login(client):
    for path in ("/account/profile", "/account/portals", "/account/disclosures",
                 "/account/sessions", "/account/sign-ins", "/account/data",
                 "/account/data/export.json", "/account/delete"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


def test_english_is_available(app, client):
    user = make_user(app)
    login(client, user.email)
    html = text(client.get("/account/profile?lang=en"))
    assert "Personal details" in html and "Persönliche Angaben" not in html


def test_every_console_page_renders_in_both_languages_without_inline_code(app, client):
    user = make_user(app)
    login(client, user.email)
    pages = ("/account", "/account/profile", "/account/portals", "/account/disclosures",
             "/account/sign-ins", "/account/sessions", "/account/sessions/end-all",
             "/account/not-me", "/account/data", "/account/delete")
    for lang in ("de", "en"):
        for path in pages:
            response = client.get(f"{path}?lang={lang}")
            assert response.status_code == 200, (path, lang)
            html = text(response)
            assert f'<html lang="{lang}">' in html
            assert "<script" not in html and "style=" not in html and "<style" not in html
            assert html.count("<h1") == 1, path
            for form in parse_forms(html):
                if form["method"].lower() == "post":
                    assert "csrf_token" in form["fields"], path
    assert "Verbundene Portale" in text(client.get("/account?lang=de"))
