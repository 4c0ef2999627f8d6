"""Claims: scope mapping (OIDC Core 5.4), the claims parameter (5.5), values and labels."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from oidc import claims as c
from servicekonto.accounts.models import User


def _user(**values) -> User:  # noqa: ANN003
    base = {"id": 7, "email": "erika@example.org", "given_name": "Erika",
            "family_name": "Mustermann",
            "email_verified_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            "birthdate": dt.date(1964, 8, 12), "street_address": "Heidestraße 17",
            "postal_code": "51147", "locality": "Köln", "country": "DE", "phone_number": None,
            "locale": "de", "updated_at": dt.datetime(2026, 2, 1, tzinfo=dt.UTC)}
    base.update(values)
    return User(**base)


def test_scope_claims() -> None:
    assert c.scope_claims("openid email") == {"email", "email_verified"}
    assert {"given_name", "family_name", "birthdate", "name"} <= c.scope_claims("profile")
    assert c.scope_claims("address phone") == {"address", "phone_number",
                                               "phone_number_verified"}
    assert c.scope_claims("openid offline_access") == set()


@pytest.mark.parametrize("raw", ["{", "[]", '"x"', '{"userinfo": []}',
                                 '{"id_token": {"email": 1}}',
                                 '{"id_token": {"email": {"essential": "yes"}}}',
                                 '{"id_token": {"acr": {"values": "x"}}}'])
def test_invalid_claims_parameter(raw: str) -> None:
    with pytest.raises(c.ClaimsRequestError):
        c.parse_claims_request(raw)


def test_claims_parameter_members_and_unknown_names() -> None:
    parsed = c.parse_claims_request(json.dumps({
        "userinfo": {"phone_number": None, "nickname": None},
        "id_token": {"birthdate": {"essential": True}, "acr": {"values": ["a"]}},
        "other": {"x": None}}))
    assert set(parsed) == {"userinfo", "id_token"}
    assert c.member_claims(parsed, "userinfo") == {"phone_number"}  # nickname not held here
    assert c.consent_claims("openid email", parsed) == {"email", "email_verified",
                                                        "phone_number", "birthdate"}
    assert c.id_token_claims(parsed, ["birthdate", "email"]) == ["birthdate"]
    assert c.id_token_claims(parsed, ["email"]) == []  # not consented
    assert c.userinfo_claims("openid email", parsed, ["email"]) == ["email"]
    assert c.requested_acr(parsed) == (["a"], False)
    assert c.parse_claims_request("") is None


def test_restrict_to_registered_scopes() -> None:
    parsed = c.parse_claims_request(json.dumps({
        "userinfo": {"address": None, "email": None},
        "id_token": {"acr": {"essential": True}}}))
    restricted = c.restrict_to_scopes(parsed, "openid email")
    assert restricted == {"userinfo": {"email": None}, "id_token": {"acr": {"essential": True}}}


def test_values() -> None:
    user = _user()
    values = c.claim_values(user, ["name", "birthdate", "email_verified", "address",
                                   "phone_number", "phone_number_verified", "updated_at"])
    assert values["name"] == "Erika Mustermann" and values["birthdate"] == "1964-08-12"
    assert values["email_verified"] is True
    assert values["address"]["formatted"] == "Heidestraße 17\n51147 Köln\nDE"
    assert "phone_number" not in values and "phone_number_verified" not in values
    assert values["updated_at"] == int(dt.datetime(2026, 2, 1, tzinfo=dt.UTC).timestamp())
    assert c.claim_values(_user(street_address=None, postal_code=None, locality=None,
                                country=None), ["address"]) == {}


def test_labels(app) -> None:  # noqa: ANN001
    with app.test_request_context("/?lang=de"):
        labels = c.consent_labels({"given_name", "family_name", "email", "email_verified",
                                   "birthdate", "address"}, {"openid", "offline_access"})
        assert labels[:4] == ["Vor- und Nachname", "Geburtsdatum", "E-Mail-Adresse", "Anschrift"]
        assert "widerrufen" in labels[-1]
    with app.test_request_context("/?lang=en"):
        assert c.consent_labels({"given_name"}, set()) == ["First name"]
