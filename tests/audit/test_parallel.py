"""Concurrent audit writers and sealers never fork or break the chain.

PostgreSQL: several OS processes (spawned) write events in their own transactions and seal
after each commit while dedicated sealers run too; an uncommitted slow writer does not block
anyone and is sealed after it commits. SQLite: the same with threads.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from servicekonto.audit import AuditTag, record, seal, verify
from servicekonto.audit.models import AuditChainHead, AuditEvent
from tests.audit.parallel_workers import seal_until, write_events

WRITERS = 4
EVENTS_PER_WRITER = 60


@pytest.fixture
def settings_overrides():
    return {"audit_seal_after_commit": False}


@pytest.fixture
def engine(app):
    return app.extensions["servicekonto.db"].engine


def url_of(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def start(context, jobs):  # noqa: ANN001, ANN201
    processes = [context.Process(target=target, args=args, daemon=True) for target, args in jobs]
    for process in processes:
        process.start()
    return processes


def join_ok(processes, timeout: float) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.1, deadline - time.monotonic()))
    stuck = [p for p in processes if p.is_alive()]
    for process in stuck:
        process.kill()
    assert not stuck, f"{len(stuck)} process(es) still running after {timeout} s"
    assert [p.exitcode for p in processes] == [0] * len(processes)


def assert_chain_complete(engine, expected: int) -> None:
    """Every event sealed exactly once, contiguous sequence, no duplicates, verify ok."""
    seal(engine)  # the unsealed tail (a skipped after-commit seal) is sealed by the next run
    result = verify(engine)
    assert result.ok, result
    assert result.sealed == expected and result.unsealed == 0
    with Session(engine) as session:
        rows = session.execute(select(AuditEvent.chain_seq, AuditEvent.entry_hash,
                                      AuditEvent.details)).all()
        head = session.get(AuditChainHead, 1)
    seqs = sorted(seq for seq, _, _ in rows)
    assert seqs == list(range(1, expected + 1))
    assert len({h for _, h, _ in rows}) == expected
    assert len({d for _, _, d in rows}) == expected  # each (worker, i) written once
    assert head.last_seq == expected


@pytest.mark.postgres
def test_parallel_processes_with_sealers_keep_one_chain(engine):
    context = multiprocessing.get_context("spawn")
    url = url_of(engine)
    stop = context.Event()
    sealers = start(context, [(seal_until, (url, stop)) for _ in range(2)])
    writers = start(context, [(write_events, (url, w, EVENTS_PER_WRITER))
                              for w in range(WRITERS)])
    join_ok(writers, timeout=180)
    stop.set()
    join_ok(sealers, timeout=60)
    assert_chain_complete(engine, WRITERS * EVENTS_PER_WRITER)


@pytest.mark.postgres
def test_uncommitted_slow_writer_blocks_nobody(engine):
    context = multiprocessing.get_context("spawn")
    url = url_of(engine)
    with Session(engine) as slow:
        slow.begin()
        slow_event = record(slow, AuditTag.ACCOUNT_PROFILE_UPDATED, actor="slow-writer")
        slow.flush()  # inserted (it has an id before the others) but not committed
        slow_id = slow_event.id

        started = time.monotonic()
        # A writer waiting on the slow transaction would hit this timeout.
        join_ok(start(context, [(write_events, (url, w, 30)) for w in range(3)]), timeout=60)
        assert time.monotonic() - started < 60
        assert seal(engine) >= 0  # a sealer does not wait for the open transaction either

        with Session(engine) as other:
            sealed = other.scalar(select(func.count()).select_from(AuditEvent)
                                  .where(AuditEvent.chain_seq.is_not(None)))
            assert sealed == 90
            assert other.get(AuditEvent, slow_id) is None  # not visible yet
        assert verify(engine).ok
        slow.commit()

    assert seal(engine) == 1
    with Session(engine) as session:
        late = session.get(AuditEvent, slow_id)
        assert late.chain_seq == 91  # lowest id, sealed last: chain order is seal order
    assert_chain_complete(engine, 91)


def test_parallel_threads_keep_one_chain(engine):
    """Threads (SQLite: serialised writes; PostgreSQL: real concurrency) with a sealer."""
    url = url_of(engine)
    stop = threading.Event()
    threads, per_thread = 4, 25
    with ThreadPoolExecutor(threads + 1) as executor:
        sealer = executor.submit(seal_until, url, stop)
        writers = [executor.submit(write_events, url, w, per_thread) for w in range(threads)]
        assert sum(w.result(timeout=180) for w in writers) == threads * per_thread
        stop.set()
        sealer.result(timeout=60)
    assert_chain_complete(engine, threads * per_thread)


def test_writes_without_sealing_are_sealed_later(engine):
    """audit_seal_after_commit=false: events pile up unsealed until ``audit seal`` runs."""
    url = url_of(engine)
    with ThreadPoolExecutor(3) as executor:
        list(executor.map(lambda w: write_events(url, w, 10, seal_after_commit=False), range(3)))
    assert verify(engine).unsealed == 30
    assert_chain_complete(engine, 30)
