"""Userinfo: claims both consented and within scope / claims request; bearer in header or form
body; 401 with WWW-Authenticate on a bad, expired or revoked token; releases audited by name."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import update

from tests.oidc.conftest import Provider, http_get, http_post


def test_claims_parameter_and_scope(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal(scope="openid email profile phone")
    claims = {"userinfo": {"phone_number": None, "address": None},
              "id_token": {"birthdate": {"essential": True}, "unknown_claim": None}}
    token, rp, _ = provider.login_flow(portal, provider.browser(), email, scope="openid email",
                                       claims=json.dumps(claims))
    id_claims = provider.id_claims(token["id_token"])
    assert id_claims["birthdate"] == "1964-08-12"
    assert "email" not in id_claims and "unknown_claim" not in id_claims
    info = rp.get(provider.base + "/userinfo").json()
    assert info["email"] == email and info["phone_number"] == "+49 611 1234567"
    assert "address" not in info  # the portal is not registered for address
    assert "given_name" not in info and "birthdate" not in info  # profile not in scope
    released = provider.audit("oidc:claims:released")
    assert released[0]["details"] == {"via": "id_token", "claims": ["sub", "birthdate"]}
    assert released[1]["details"]["via"] == "userinfo"
    assert set(released[1]["details"]["claims"]) == {"sub", "email", "email_verified",
                                                     "phone_number"}


def test_only_consented_claims(provider: Provider) -> None:
    from servicekonto.consent.models import Consent
    from servicekonto.db import db

    email = provider.citizen()
    portal = provider.portal(scope="openid profile address")
    token, rp, _ = provider.login_flow(portal, provider.browser(), email,
                                       scope="openid profile address")
    info = rp.get(provider.base + "/userinfo").json()
    assert info["address"]["locality"] == "Köln" and info["birthdate"]
    with provider.app.app_context():
        consent = db.session.query(Consent).one()
        consent.granted_claims = [c for c in consent.granted_claims
                                  if c not in ("birthdate", "address")]
        db.session.commit()
    info = rp.get(provider.base + "/userinfo").json()
    assert "address" not in info and "birthdate" not in info and info["family_name"]


def test_token_in_form_body_and_post(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal()
    token, _rp, _ = provider.login_flow(portal, provider.browser(), email)
    response = http_post(provider.base + "/userinfo",
                             data={"access_token": token["access_token"]})
    assert response.status_code == 200 and response.json()["email"] == email
    assert response.headers["Cache-Control"] == "no-store"
    query = http_get(provider.base + "/userinfo",
                         params={"access_token": token["access_token"]})
    assert query.status_code == 401  # never in the query string


def test_bad_expired_and_revoked_tokens(provider: Provider) -> None:
    from oidc.models import Token
    from servicekonto.db import db

    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = http_get(provider.base + "/userinfo", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]

    email = provider.citizen()
    portal = provider.portal()
    browser = provider.browser()
    token, rp, _ = provider.login_flow(portal, browser, email)
    assert rp.get(provider.base + "/userinfo").status_code == 200
    revoke = http_post(provider.base + "/oauth/revoke",
                           data={"token": token["access_token"]},
                           auth=(portal.client_id, portal.secret))
    assert revoke.status_code == 200
    response = rp.get(provider.base + "/userinfo")
    assert response.status_code == 401 and "invalid_token" in response.headers["WWW-Authenticate"]

    token, rp, _ = provider.login_flow(portal, browser)
    with provider.app.app_context():
        db.session.execute(update(Token).values(
            access_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
        db.session.commit()
    assert rp.get(provider.base + "/userinfo").status_code == 401
