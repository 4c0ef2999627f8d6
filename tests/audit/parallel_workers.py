"""Worker functions for the parallel audit tests (importable by spawned processes)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from servicekonto.audit import AuditTag, record, seal


def write_events(url: str, worker: int, count: int, seal_after_commit: bool = True,
                 batch_size: int = 50) -> int:
    """Insert ``count`` events, one transaction each, sealing after every commit like the app."""
    engine = create_engine(url, connect_args=_connect_args(url))
    try:
        for i in range(count):
            with Session(engine) as session, session.begin():
                record(session, AuditTag.ACCOUNT_LOGIN_SUCCESS, actor=f"worker:{worker}",
                       subject_user_id=worker, details={"worker": worker, "i": i})
            if seal_after_commit:
                seal(engine, batch_size=batch_size, max_batches=1)
        return count
    finally:
        engine.dispose()


def seal_until(url: str, stop: Any, batch_size: int = 7) -> int:
    """A dedicated sealer (like cron's ``audit seal``) running until ``stop`` is set."""
    engine = create_engine(url, connect_args=_connect_args(url))
    sealed = 0
    try:
        while not stop.is_set():
            sealed += seal(engine, batch_size=batch_size, max_batches=3)
            time.sleep(0.002)
        return sealed
    finally:
        engine.dispose()


def _connect_args(url: str) -> dict[str, Any]:
    return {"timeout": 30} if url.startswith("sqlite") else {}
