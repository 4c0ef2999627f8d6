"""client_credentials writes the token and its audit entry together (PostgreSQL: one
statement in autocommit, SQLite: one transaction): the same rows as before, sealed and
counted, and never a token without its entry."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.oidc.conftest import Provider, http_post


def _service(provider: Provider) -> Any:
    return provider.portal("Backend", grant_types=["client_credentials"], redirect_uri=None,
                           scope="fachverfahren.read")


def _grant(provider: Provider, service: Any) -> Any:
    return http_post(provider.base + "/token", auth=(service.client_id, service.secret),
                     data={"grant_type": "client_credentials", "scope": "fachverfahren.read"})


def _issued() -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("servicekonto_tokens_issued_total",
                                     {"grant": "client_credentials"}) or 0.0


def test_token_and_entry_are_written_sealed_and_counted(provider: Provider) -> None:
    from oidc.models import Token
    from oidc.tokens import hash_token
    from servicekonto.audit.models import AuditEvent
    from servicekonto.audit.service import verify
    from servicekonto.db import db

    service = _service(provider)
    counted = _issued()
    response = _grant(provider, service)
    assert response.status_code == 200, response.text
    access = response.json()["access_token"]
    assert _issued() == counted + 1
    with provider.app.app_context():
        token = db.session.scalar(select(Token).where(
            Token.access_token_hash == hash_token(access)))
        assert token is not None and token.user_id is None and token.refresh_token_hash is None
        assert token.grant_type == "client_credentials" and token.scope == "fachverfahren.read"
        assert token.claims_request is None and token.amr is None
        assert token.access_expires_at > token.issued_at
        event = db.session.scalars(select(AuditEvent)
                                   .where(AuditEvent.tag == "oidc:token:issued")).one()
        assert event.actor == f"client:{service.client_id}"
        assert event.client_id == service.client_id and event.subject_user_id is None
        assert json.loads(event.details) == {"grant_type": "client_credentials",
                                             "scope": ["fachverfahren.read"]}
        assert event.ip == "127.0.0.1" and event.chain_seq is not None
    assert verify(provider.app.extensions["servicekonto.db"].engine).ok
    introspected = http_post(provider.base + "/oauth/introspect",
                             auth=(service.client_id, service.secret), data={"token": access})
    assert introspected.json()["active"] is True


def test_no_token_without_its_audit_entry(provider: Provider,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """An audit entry the database refuses (actor longer than its column) takes the token
    with it: one statement (PostgreSQL) is atomic."""
    from oidc import grants
    from oidc.models import Token
    from servicekonto.db import db

    if provider.app.extensions["servicekonto.db"].engine.dialect.name != "postgresql":
        pytest.skip("SQLite does not enforce column lengths")
    service = _service(provider)
    real_entry = grants.entry

    def too_long(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**real_entry(*args, **kwargs), "actor": "x" * 500}

    monkeypatch.setattr(grants, "entry", too_long)
    response = _grant(provider, service)
    assert response.status_code >= 500  # a database error: 503 (servicekonto.errors)
    assert "access_token" not in response.text
    with provider.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Token)) == 0
