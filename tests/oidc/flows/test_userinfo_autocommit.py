"""Userinfo writes its disclosure entry as one autocommit INSERT outside any Session: the
after-commit work of a Session (sealing, business metrics) still happens, and nothing is
released when that INSERT fails."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.oidc.conftest import Provider, http_get


def _access_token(provider: Provider) -> str:
    email = provider.citizen()
    portal = provider.portal()
    token, _rp, _ = provider.login_flow(portal, provider.browser(), email)
    return token["access_token"]


def test_userinfo_entry_is_sealed_right_after_the_request(provider: Provider) -> None:
    """Default settings seal in the request (audit_seal_interval_ms = 0), as after a commit."""
    from servicekonto.audit.models import AuditEvent
    from servicekonto.audit.service import verify
    from servicekonto.db import db

    access = _access_token(provider)
    response = http_get(provider.base + "/userinfo",
                        headers={"Authorization": f"Bearer {access}"})
    assert response.status_code == 200, response.text
    with provider.app.app_context():
        events = db.session.scalars(select(AuditEvent)
                                    .where(AuditEvent.tag == "oidc:claims:released")
                                    .order_by(AuditEvent.id)).all()
        last = events[-1]
        assert '"via":"userinfo"' in last.details
        assert last.chain_seq is not None and last.entry_hash
    assert verify(provider.app.extensions["servicekonto.db"].engine).ok


def test_nothing_is_released_when_the_audit_insert_fails(
        provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    from oidc import userinfo

    access = _access_token(provider)
    before = len(provider.audit("oidc:claims:released"))

    def failing(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(userinfo, "insert_committed", failing)
    response = http_get(provider.base + "/userinfo",
                        headers={"Authorization": f"Bearer {access}"})
    assert response.status_code == 500
    assert "sub" not in response.text and "@" not in response.text
    assert len(provider.audit("oidc:claims:released")) == before


def test_audit_committed_seals_and_counts(app: Any) -> None:
    """The one hook for writes outside a Session: seals (here at once) and counts metrics."""
    from sqlalchemy import insert

    from servicekonto.audit.models import AuditEvent
    from servicekonto.audit.service import audit_committed, entry
    from servicekonto.audit.tags import AuditTag
    from servicekonto.db import utcnow

    def issued() -> float:
        from prometheus_client import REGISTRY

        return REGISTRY.get_sample_value("servicekonto_tokens_issued_total",
                                         {"grant": "client_credentials"}) or 0.0

    engine = app.extensions["servicekonto.db"].engine
    with app.test_request_context():
        row = entry(AuditTag.OIDC_TOKEN_ISSUED, actor="client:x", client_id="x",
                    details={"grant_type": "client_credentials", "scope": []})
    with engine.begin() as conn:
        conn.execute(insert(AuditEvent.__table__), {**row, "occurred_at": utcnow()})
    counted = issued()
    audit_committed(engine, [(row["tag"], row["details"])])
    assert issued() == counted + 1
    with engine.connect() as conn:
        unsealed = conn.scalar(select(AuditEvent.id).where(AuditEvent.chain_seq.is_(None)))
    assert unsealed is None
