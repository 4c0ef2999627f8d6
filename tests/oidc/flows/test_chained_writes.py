"""The code flow's writes (PostgreSQL: one chained statement each for authorize, code
redemption and refresh rotation; SQLite: one transaction each) leave the same rows as before:
the code row unchanged but for ``used_at``, the tokens linked to their code and family, the
same audit entries, a chain that verifies; and never a token without its audit entries."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from tests.oidc.conftest import Provider, http_post

SCOPE = "openid email offline_access"


def _refresh(provider: Provider, portal: Any, token: str) -> requests.Response:
    return http_post(provider.base + "/token", data={
        "grant_type": "refresh_token", "refresh_token": token},
        auth=(portal.client_id, portal.secret))


def _postgres(provider: Provider) -> bool:
    return provider.app.extensions["servicekonto.db"].engine.dialect.name == "postgresql"


def test_rows_and_audit_entries_of_a_code_flow_and_a_refresh(provider: Provider) -> None:
    from oidc.models import AuthorizationCode, Token
    from oidc.tokens import hash_token
    from servicekonto.audit.service import verify
    from servicekonto.db import db

    email = provider.citizen()
    portal = provider.portal(scope=SCOPE)
    browser = provider.browser()
    token, _rp, landing = provider.login_flow(portal, browser, email, scope=SCOPE)
    with provider.app.app_context():
        code = db.session.scalars(select(AuthorizationCode)).one()
        # The redemption set used_at and nothing else (no column of the new token leaked
        # into the UPDATE's SET clause).
        assert code.code_hash == hash_token(landing.params["code"])
        assert code.used_at is not None and code.scope == SCOPE
        assert code.redirect_uri == portal.redirect_uri and code.client_pk is not None
        assert code.acr and code.sid and code.auth_time and code.amr
        first = db.session.scalars(select(Token)).one()
        assert first.access_token_hash == hash_token(token["access_token"])
        assert first.refresh_token_hash == hash_token(token["refresh_token"])
        assert first.authorization_code_id == code.id and first.user_id == code.user_id
        assert first.sid == code.sid and first.acr == code.acr and first.amr == code.amr
        assert first.grant_type == "authorization_code" and first.rotated_at is None
        user_id = code.user_id

    refreshed = _refresh(provider, portal, token["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    body = refreshed.json()
    with provider.app.app_context():
        old = db.session.get(Token, first.id)
        assert old is not None and old.rotated_at is not None and old.revoked_at is not None
        new = db.session.scalars(select(Token).where(
            Token.access_token_hash == hash_token(body["access_token"]))).one()
        assert new.refresh_token_hash == hash_token(body["refresh_token"])
        assert new.family_id == old.family_id and new.authorization_code_id == code.id
        assert new.refresh_expires_at == old.refresh_expires_at
        assert new.grant_type == "refresh_token" and new.rotated_at is None

    client = portal.client_id
    assert provider.audit("oidc:code:issued") == [
        {"client_id": client, "user": user_id, "details": {"scope": SCOPE.split(),
                                                            "acr": code.acr}}]
    assert provider.audit("oidc:token:issued") == [
        {"client_id": client, "user": user_id,
         "details": {"grant_type": "authorization_code", "scope": SCOPE.split(),
                     "refresh": True, "family": first.family_id}}]
    released = provider.audit("oidc:claims:released")
    assert len(released) == 2 and released[0] == released[1]  # code, then refresh
    assert released[0]["client_id"] == client and released[0]["user"] == user_id
    assert released[0]["details"]["via"] == "id_token"
    assert released[0]["details"]["claims"][0] == "sub"
    assert provider.audit("oidc:token:refreshed") == [
        {"client_id": client, "user": user_id,
         "details": {"scope": SCOPE.split(), "family": first.family_id}}]
    assert verify(provider.app.extensions["servicekonto.db"].engine).ok

    # Signed in with consent: the hot path (PostgreSQL: one statement) writes the same entry.
    provider.login_flow(portal, browser, email, scope=SCOPE)
    issued = provider.audit("oidc:code:issued")
    assert len(issued) == 2 and issued[1] == issued[0]
    with provider.app.app_context():
        codes = db.session.scalars(select(AuthorizationCode).order_by(AuthorizationCode.id)).all()
        assert len(codes) == 2 and codes[1].used_at is not None
        assert (codes[1].scope, codes[1].redirect_uri, codes[1].sid, codes[1].acr) == (
            code.scope, code.redirect_uri, code.sid, code.acr)
    assert verify(provider.app.extensions["servicekonto.db"].engine).ok


@pytest.mark.parametrize("grant", ["authorization_code", "refresh_token"])
def test_no_token_without_its_audit_entries(provider: Provider, monkeypatch: pytest.MonkeyPatch,
                                            grant: str) -> None:
    """An audit entry the database refuses (actor longer than its column) takes the new token
    and the redemption or rotation with it: one statement (PostgreSQL) is atomic."""
    from oidc import grants
    from oidc.models import AuthorizationCode, Token
    from servicekonto.db import db

    if not _postgres(provider):
        pytest.skip("SQLite does not enforce column lengths")
    email = provider.citizen()
    portal = provider.portal(scope=SCOPE)
    browser = provider.browser()
    real_entry = grants.entry

    def too_long(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**real_entry(*args, **kwargs), "actor": "x" * 500}

    if grant == "authorization_code":
        rp = provider.rp(portal, scope=SCOPE)
        url, _state, verifier = provider.authorization_url(rp, nonce="n-0S6")
        landing = browser.go(url, email=email)
        monkeypatch.setattr(grants, "entry", too_long)
        response = http_post(provider.base + "/token", auth=(portal.client_id, portal.secret),
                             data={"grant_type": grant, "code": landing.params["code"],
                                   "redirect_uri": portal.redirect_uri,
                                   "code_verifier": verifier})
        assert response.status_code >= 500 and "access_token" not in response.text
        with provider.app.app_context():
            assert db.session.scalar(select(func.count()).select_from(Token)) == 0
            assert db.session.scalars(select(AuthorizationCode)).one().used_at is None
        return
    token, _rp, _ = provider.login_flow(portal, browser, email, scope=SCOPE)
    monkeypatch.setattr(grants, "entry", too_long)
    response = _refresh(provider, portal, token["refresh_token"])
    assert response.status_code >= 500 and "access_token" not in response.text
    with provider.app.app_context():
        old = db.session.scalars(select(Token)).one()  # no new token
        assert old.rotated_at is None and old.revoked_at is None
    monkeypatch.setattr(grants, "entry", real_entry)
    assert _refresh(provider, portal, token["refresh_token"]).status_code == 200


def test_race_loser_writes_nothing(provider: Provider) -> None:
    """The chained statement on a code that is already used (the UPDATE matches no row)
    inserts no token and no audit entry, and says so (0 entries written)."""
    from oidc import grants
    from oidc.models import AuthorizationCode, Token
    from oidc.tokens import chained_params, new_token
    from servicekonto.audit.models import AuditEvent
    from servicekonto.audit.service import entry, execute_audited_many
    from servicekonto.audit.tags import AuditTag
    from servicekonto.db import db, utcnow
    from servicekonto.settings import current_settings

    if not _postgres(provider):
        pytest.skip("the chained statement is PostgreSQL's")
    email = provider.citizen()
    portal = provider.portal(scope=SCOPE)
    provider.login_flow(portal, provider.browser(), email, scope=SCOPE)
    with provider.app.test_request_context():
        code = db.session.scalars(select(AuthorizationCode)).one()
        client = db.session.get(grants.Client, code.client_pk)
        tokens_before = db.session.scalar(select(func.count()).select_from(Token))
        events_before = db.session.scalar(select(func.count()).select_from(AuditEvent))
        values, _access, _refresh_value = new_token(
            client=client, user_id=code.user_id, scope=code.scope,
            grant_type="authorization_code", with_refresh=True, settings=current_settings(),
            authorization_code_id=code.id)
        audits = [entry(AuditTag.OIDC_TOKEN_ISSUED, actor="client:x", details={}),
                  entry(AuditTag.OIDC_CLAIMS_RELEASED, actor="client:x", details={})]
        db.session.rollback()
        with db.reader.connect() as conn:
            written = execute_audited_many(
                conn, db.engine, grants._REDEEM_AUDITED,
                {**chained_params(values), "code_id": code.id, "now": utcnow()}, audits)
        assert written == 0
        assert db.session.scalar(select(func.count()).select_from(Token)) == tokens_before
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == events_before
