"""The hot-path helpers behind the query counts: the client cache (invalidation in this process
at once, from other instances within client_cache_seconds) and batched background sealing
(every committed entry sealed within the interval, chain verifiable, nothing sealed inline)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import create_engine, update

from oidc.clients import create_client
from oidc.models import Client
from oidc.server import client_by_pk, client_cache, get_client
from servicekonto.audit import AuditTag, record, verify
from servicekonto.audit.models import AuditEvent
from servicekonto.db import db, utcnow


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"audit_seal_after_commit": True, "audit_seal_interval_ms": 50,
            "client_cache_seconds": 1}


def _new_client(app: Any) -> tuple[str, int]:
    with app.app_context():
        client, _secret = create_client(db.session, name="Cache test",
                                        redirect_uris=["https://portal.example/cb"])
        db.session.commit()
        return client.client_id, client.id


def test_client_cache_serves_repeated_reads_without_queries(app: Any) -> None:
    client_id, pk = _new_client(app)
    engine = app.extensions["servicekonto.db"].engine
    statements: list[str] = []

    def count(_c: Any, _cu: Any, statement: str, *_a: Any) -> None:
        statements.append(statement)

    with app.app_context():
        first = get_client(client_id)
        assert first is not None and first.id == pk
        from sqlalchemy import event

        event.listen(engine, "before_cursor_execute", count)
        try:
            for _ in range(5):
                assert get_client(client_id) is first
                assert client_by_pk(pk) is first
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert statements == []
    assert client_cache(app) is not None


def test_change_in_this_process_is_seen_at_once(app: Any) -> None:
    client_id, _pk = _new_client(app)
    with app.app_context():
        assert get_client(client_id).status == "active"
        db.session.execute(update(Client).where(Client.client_id == client_id)
                           .values(status="suspended"))
        db.session.commit()
        assert get_client(client_id).status == "suspended"


def test_change_by_another_instance_is_seen_within_the_recheck(app: Any,
                                                               migrated_database: str) -> None:
    client_id, _pk = _new_client(app)
    with app.app_context():
        assert get_client(client_id).client_name == "Cache test"
    other = create_engine(migrated_database)  # another instance: not this process's engine
    try:
        with other.begin() as conn:
            conn.execute(update(Client).where(Client.client_id == client_id)
                         .values(client_name="Renamed", updated_at=utcnow()))
    finally:
        other.dispose()
    deadline = time.monotonic() + 5
    with app.app_context():
        while get_client(client_id).client_name != "Renamed":
            assert time.monotonic() < deadline, "cache never noticed the other instance"
            time.sleep(0.05)


def test_background_sealer_seals_everything_and_the_chain_verifies(app: Any) -> None:
    engine = app.extensions["servicekonto.db"].engine
    with app.app_context():
        for i in range(30):
            record(db.session, AuditTag.ACCOUNT_LOGIN_SUCCESS, actor="system",
                   subject_user_id=i, details={"n": i})
            db.session.commit()
        assert app.extensions["servicekonto.audit_sealer"] is not None
    deadline = time.monotonic() + 10
    while True:
        result = verify(engine)
        if result.unsealed == 0:
            break
        assert time.monotonic() < deadline, f"still unsealed: {result.unsealed}"
        time.sleep(0.05)
    assert result.ok, result.reason
    assert result.sealed >= 30
    with app.app_context():
        sealed = db.session.query(AuditEvent).filter(AuditEvent.chain_seq.isnot(None)).count()
    assert sealed == result.sealed
