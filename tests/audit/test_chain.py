"""The audit log: record() in the caller's transaction, seal() into a hash chain, verify()."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from servicekonto.accounts.models import User
from servicekonto.accounts.services import create_user
from servicekonto.audit import AuditTag, record, seal, verify
from servicekonto.audit.models import AuditChainHead, AuditEvent
from servicekonto.audit.service import GENESIS_HASH, canonical, chain_hash


@pytest.fixture
def settings_overrides():
    # Seal explicitly in these tests (the after-commit hook is tested on its own below).
    return {"audit_seal_after_commit": False}


@pytest.fixture
def engine(app):
    return app.extensions["servicekonto.db"].engine


def write_events(engine, count: int, tag: AuditTag = AuditTag.ACCOUNT_LOGIN_SUCCESS) -> list[int]:
    ids = []
    with Session(engine) as session, session.begin():
        for i in range(count):
            event = record(session, tag, actor="system", subject_user_id=i,
                           details={"n": i, "claims": ["email", "given_name"]})
            session.flush()
            ids.append(event.id)
    return ids


def events_by_seq(engine) -> list[AuditEvent]:
    with Session(engine) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.chain_seq.is_not(None))
                                    .order_by(AuditEvent.chain_seq)))


def test_record_then_seal_builds_a_verifiable_chain(engine):
    write_events(engine, 5)
    before = verify(engine)
    assert before.ok and before.sealed == 0 and before.unsealed == 5

    assert seal(engine) == 5
    result = verify(engine)
    assert result.ok and result.sealed == 5 and result.unsealed == 0

    events = events_by_seq(engine)
    assert [e.chain_seq for e in events] == [1, 2, 3, 4, 5]
    previous = GENESIS_HASH
    for event in events:
        expected = hashlib.sha256(previous.encode() + b"\n" + canonical(event, event.chain_seq))
        assert event.entry_hash == expected.hexdigest()
        previous = event.entry_hash
    with Session(engine) as session:
        head = session.get(AuditChainHead, 1)
        assert (head.last_seq, head.last_hash) == (5, previous)
    assert seal(engine) == 0  # nothing left


def test_sealing_in_batches_continues_the_chain(engine):
    write_events(engine, 7)
    assert seal(engine, batch_size=3, max_batches=1) == 3
    assert verify(engine).unsealed == 4
    write_events(engine, 2)
    assert seal(engine, batch_size=3) == 6
    result = verify(engine)
    assert result.ok and result.sealed == 9 and result.unsealed == 0


def test_entry_fields_and_canonical_details(app, engine):
    request = app.test_request_context("/", headers={"User-Agent": "Mozilla/5.0 Test"},
                                       environ_base={"REMOTE_ADDR": "203.0.113.7"})
    with request, Session(engine) as session, session.begin():
        record(session, AuditTag.ACCOUNT_LOGIN_FAILURE, actor="anonymous",
               subject_user_id=42, client_id="portal-1",
               details={"b": 2, "a": "x", "reason": "bad_password"})
    with Session(engine) as session:
        event = session.scalars(select(AuditEvent)).one()
    assert event.tag == "account:login:failure"
    assert event.actor == "anonymous"
    assert event.subject_user_id == 42 and event.client_id == "portal-1"
    assert event.ip == "203.0.113.7"
    assert event.user_agent_hash == hashlib.sha256(b"Mozilla/5.0 Test").hexdigest()
    assert event.details == '{"a":"x","b":2,"reason":"bad_password"}'
    assert event.occurred_at.tzinfo is not None
    assert event.chain_seq is None and event.entry_hash is None


def test_tags_are_source_subject_action():
    for tag in AuditTag:
        assert len(tag.value.split(":")) == 3, tag
        assert tag.value == tag.value.lower()
    assert len({t.value for t in AuditTag}) == len(AuditTag)


def test_unknown_tag_is_refused(engine):
    with Session(engine) as session, pytest.raises(ValueError):
        record(session, "account:made:up", actor="system")  # type: ignore[arg-type]


@pytest.mark.parametrize("details", [
    {"password": "geheim"},
    {"Client_Secret": "x"},
    {"form": {"new_password": "x"}},
    {"items": [{"refresh_token": "x"}]},
])
def test_secrets_in_details_are_refused(engine, details):
    with Session(engine) as session, pytest.raises(ValueError, match="secrets"):
        record(session, AuditTag.ACCOUNT_PASSWORD_CHANGED, actor="system", details=details)


def test_event_rolls_back_with_its_transaction(app):
    from servicekonto.db import db

    with app.app_context():
        session = db.session
        create_user(session, email="roll.back@example.org", password="kaum-zu-erraten-42",
                    given_name="Rolf", family_name="Back", actor="cli")
        session.flush()
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 1
        session.rollback()
        assert session.scalar(select(func.count()).select_from(User)) == 0
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0

        create_user(session, email="kept@example.org", password="kaum-zu-erraten-42",
                    given_name="Kerstin", family_name="Kept", actor="cli")
        session.commit()
        user_id = session.scalar(select(User.id))
        event = session.scalars(select(AuditEvent)).one()
        assert event.tag == AuditTag.ACCOUNT_USER_CREATED
        assert event.subject_user_id == user_id


def test_failed_change_leaves_no_event(app, engine):
    """A change that fails at commit (unique violation) takes its audit event with it."""
    from sqlalchemy.exc import IntegrityError

    from servicekonto.db import db

    with app.app_context():
        create_user(db.session, email="twice@example.org", password="kaum-zu-erraten-42",
                    given_name="Tom", family_name="Twice")
        db.session.commit()
    with Session(engine) as session:
        session.add(User(email="twice@example.org", password_hash="x", given_name="T",
                         family_name="T", locale="de"))
        record(session, AuditTag.ACCOUNT_USER_CREATED, actor="system")
        with pytest.raises(IntegrityError):
            session.commit()
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 1


@pytest.mark.parametrize("settings_overrides", [{"audit_seal_after_commit": True}])
def test_seal_after_commit(app, engine):
    from servicekonto.db import db

    with app.app_context():
        record(db.session, AuditTag.ACCOUNT_LOGOUT, actor="citizen:1", subject_user_id=1)
        db.session.commit()
        record(db.session, AuditTag.ACCOUNT_LOGOUT, actor="citizen:1", subject_user_id=1)
        db.session.rollback()
    result = verify(engine)
    assert result.ok and result.sealed == 1 and result.unsealed == 0


# -- tampering ------------------------------------------------------------------------------

@pytest.fixture
def sealed_chain(engine) -> list[int]:
    write_events(engine, 5)
    seal(engine)
    assert verify(engine).ok
    return [e.id for e in events_by_seq(engine)]


def test_changed_details_are_reported(engine, sealed_chain):
    with engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.chain_seq == 3)
                     .values(details='{"n":999}'))
    result = verify(engine)
    assert not result.ok
    assert result.broken_seq == 3 and result.broken_event_id == sealed_chain[2]
    assert result.sealed == 2
    assert "hash" in result.reason


@pytest.mark.parametrize("column", ["tag", "actor", "subject_user_id", "occurred_at", "ip"])
def test_any_changed_column_is_reported(engine, sealed_chain, column):
    values = {"tag": "account:login:failure", "actor": "someone-else", "subject_user_id": 7777,
              "ip": "198.51.100.1"}
    with engine.begin() as conn:
        if column == "occurred_at":
            conn.execute(text("UPDATE audit_events SET occurred_at = :t WHERE chain_seq = 2"),
                         {"t": "2001-01-01 00:00:00"})
        else:
            conn.execute(update(AuditEvent).where(AuditEvent.chain_seq == 2)
                         .values({column: values[column]}))
    assert verify(engine).broken_seq == 2


def test_deleted_middle_entry_is_reported(engine, sealed_chain):
    with engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.chain_seq == 3))
    result = verify(engine)
    assert result.broken_seq == 3
    assert "missing" in result.reason


def test_deleted_last_entry_is_reported_through_the_head(engine, sealed_chain):
    with engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.chain_seq == 5))
    result = verify(engine)
    assert not result.ok
    assert result.broken_seq == 5
    assert "chain head" in result.reason


def test_rehashed_entry_breaks_the_next_link(engine, sealed_chain):
    """An attacker who recomputes the modified entry's own hash still breaks its successor."""
    with Session(engine) as session, session.begin():
        events = {e.chain_seq: e for e in session.scalars(select(AuditEvent))}
        forged = events[3]
        forged.details = json.dumps({"n": 999})
        forged.entry_hash = chain_hash(events[2].entry_hash, forged, 3)
    result = verify(engine)
    assert result.broken_seq == 4 and result.broken_event_id == sealed_chain[3]


def test_forged_appended_entry_is_reported(engine, sealed_chain):
    with Session(engine) as session, session.begin():
        last = session.scalars(select(AuditEvent).where(AuditEvent.chain_seq == 5)).one()
        forged = record(session, AuditTag.ACCOUNT_LOGIN_SUCCESS, actor="attacker")
        session.flush()
        session.refresh(forged)
        forged.chain_seq = 6
        forged.entry_hash = chain_hash(last.entry_hash, forged, 6)
    result = verify(engine)
    assert not result.ok and "chain head" in result.reason


def test_missing_head_row_is_reported(engine, sealed_chain):
    with engine.begin() as conn:
        conn.execute(delete(AuditChainHead))
    result = verify(engine)
    assert not result.ok and "head" in result.reason
    with engine.begin() as conn:  # restore for the wipe between tests
        conn.execute(text("INSERT INTO audit_chain_head (id, last_seq, last_hash) "
                          f"VALUES (1, 0, '{GENESIS_HASH}')"))


def test_unsealed_entries_are_reported_not_verified(engine, sealed_chain):
    write_events(engine, 2)
    result = verify(engine)
    assert result.ok and result.sealed == 5 and result.unsealed == 2
