"""Writing, sealing and verifying the audit log.

Design (see docs/audit-log.md):

* ``record()`` adds an event to the *caller's* SQLAlchemy session, so it commits or rolls back
  together with the change it records. Inserting takes no lock beyond the id sequence.
* ``seal()`` gives unsealed events, in id order, the next ``chain_seq`` and
  ``entry_hash = sha256(previous hash + canonical entry)``. One sealer at a time holds the
  single ``audit_chain_head`` row (PostgreSQL: ``FOR UPDATE SKIP LOCKED`` so a busy sealer
  never makes a request wait; SQLite: writes are serialised anyway). It runs after every commit
  that recorded something (``audit_seal_after_commit``) and from ``servicekonto audit seal``.
* ``verify()`` walks the chain in ``chain_seq`` order, checks every hash and link and the head,
  and reports the first broken link and how many events are not sealed yet.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from flask import has_request_context, request
from sqlalchemy import Connection, Engine, bindparam, insert, select, text, union_all, update
from sqlalchemy.orm import Session

from servicekonto import prepared
from servicekonto.audit.models import AuditChainHead, AuditEvent
from servicekonto.audit.tags import AuditTag
from servicekonto.db import utcnow

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
PENDING_FLAG = "servicekonto.audit_pending"
_FORBIDDEN_DETAIL_KEYS = frozenset({
    "password", "new_password", "secret", "client_secret", "token", "access_token",
    "refresh_token", "id_token", "code", "otp", "totp", "recovery_code",
})


def _client_ip() -> str | None:
    return request.remote_addr if has_request_context() else None


def _user_agent_hash() -> str | None:
    if not has_request_context():
        return None
    agent = request.headers.get("User-Agent")
    return hashlib.sha256(agent.encode()).hexdigest() if agent else None


def _check_details(details: Mapping[str, Any]) -> None:
    """Refuse secret-looking keys at any depth (nested dicts and lists of dicts too)."""
    for key, value in details.items():
        if str(key).lower() in _FORBIDDEN_DETAIL_KEYS:
            raise ValueError(f"audit details must not contain secrets (key {key!r})")
        nested = value if isinstance(value, list | tuple) else [value]
        for item in nested:
            if isinstance(item, Mapping):
                _check_details(item)


def record(
    session: Session,
    tag: AuditTag,
    *,
    actor: str,
    subject_user_id: int | None = None,
    client_id: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event to ``session`` (commits with the caller's change, never alone).

    ``actor`` says who acted: ``citizen:<id>``, ``anonymous``, ``cli``, ``client:<client_id>``,
    ``system``. ``details`` is JSON without secrets or personal values (names of claims, ids).
    """
    event = AuditEvent(**entry(tag, actor=actor, subject_user_id=subject_user_id,
                               client_id=client_id, details=details))
    session.add(event)
    session.info[PENDING_FLAG] = True
    return event


def entry(
    tag: AuditTag,
    *,
    actor: str,
    subject_user_id: int | None = None,
    client_id: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The column values of one audit event (checked like ``record``), for ``insert_now``."""
    details = dict(details or {})
    _check_details(details)
    return {
        "tag": str(AuditTag(tag)),
        "actor": actor,
        "subject_user_id": subject_user_id,
        "client_id": client_id,
        "ip": _client_ip(),
        "user_agent_hash": _user_agent_hash(),
        "details": json.dumps(details, sort_keys=True, separators=(",", ":"), default=str),
    }


#: ``session.info`` key: (tag, details) of events written by ``insert_now`` in the current
#: transaction (the metrics counters read it after the commit, like the ORM-added ones).
INSERTED_KEY = "servicekonto.audit_inserted"
_INSERT = insert(AuditEvent.__table__)


def insert_now(session: Session, *entries: dict[str, Any]) -> None:
    """Write ``entries`` (from ``entry()``) in the session's transaction at once: one INSERT
    (several rows: one executemany), no ORM unit of work. The hot paths' variant of ``record``:
    the same rows, the same transaction, the same sealing; only cheaper (docs/performance.md).
    """
    now = utcnow()
    rows = [{**e, "occurred_at": now} for e in entries]
    session.execute(_INSERT, rows if len(rows) > 1 else rows[0])
    session.info[PENDING_FLAG] = True
    session.info.setdefault(INSERTED_KEY, []).extend((r["tag"], r["details"]) for r in rows)


def insert_committed(conn: Connection, engine: Engine, *entries: dict[str, Any]) -> None:
    """Write ``entries`` (from ``entry()``) as ONE INSERT on ``conn``, a connection in
    autocommit (``db.reader``): the statement is its own atomic transaction, without the BEGIN
    and COMMIT round trips and the Session's commit machinery. For a request whose only write
    is its audit entry (userinfo). Then the after-commit hooks run (``audit_committed``).
    """
    now = utcnow()
    rows = [{**e, "occurred_at": now} for e in entries]
    if len(rows) == 1:
        prepared.execute(conn, _INSERT, rows[0], columns=_ENTRY_COLUMNS)
    else:
        conn.execute(_INSERT, rows)
    audit_committed(engine, [(r["tag"], r["details"]) for r in rows])


#: The audit columns an ``entry()`` fills (with ``occurred_at``), in a fixed order.
_ENTRY_COLUMNS = ("occurred_at", "tag", "actor", "subject_user_id", "client_id", "ip",
                  "user_agent_hash", "details")


def insert_from(cte: Any) -> Any:
    """``INSERT INTO audit_events (...) SELECT :audit_<column>, ... FROM cte``: one audit entry
    per row ``cte`` (a data-modifying ``INSERT/UPDATE ... RETURNING``) returns, in the same
    statement (PostgreSQL: a single statement is atomic; no row, no entry). Build it once and
    run it with ``execute_audited``."""
    table = AuditEvent.__table__
    binds = [bindparam(f"audit_{name}", type_=table.c[name].type) for name in _ENTRY_COLUMNS]
    return (insert(table).from_select(list(_ENTRY_COLUMNS), select(*binds).select_from(cte))
            .returning(table.c.id))  # the driver reports no row count for this form


def execute_audited(conn: Connection, engine: Engine, statement: Any,
                    params: dict[str, Any], audit: dict[str, Any]) -> int:
    """Run ``statement`` (from ``insert_from``) on an autocommit connection with ``params`` and
    the audit entry ``audit`` (from ``entry()``): the change and its audit entry are one
    statement, so one round trip and one atomic unit. Then the after-commit hooks
    (``audit_committed``). Returns how many entries were written (0: the change matched no
    row, so nothing was written at all)."""
    row = {**audit, "occurred_at": utcnow()}
    written = len(prepared.fetch_all(conn, statement, {**params, **{f"audit_{k}": row[k]
                                                                     for k in _ENTRY_COLUMNS}}))
    if written:
        audit_committed(engine, [(row["tag"], row["details"])] * written)
    return written


def insert_values(count: int) -> Any:
    """``INSERT INTO audit_events (...) VALUES (:audit0_<column>, ...), ...``: ``count``
    entries with bind parameters named like ``insert_many_from``'s. For a write whose audit
    entries do not come from its rows (e.g. as a data-modifying CTE beside it: the login's
    session write, ``servicekonto.sessions.stores``). Fill it with ``entry_params``."""
    table = AuditEvent.__table__
    return insert(table).values([
        {name: bindparam(f"audit{i}_{name}", type_=table.c[name].type)
         for name in _ENTRY_COLUMNS} for i in range(count)])


def entry_params(entries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The bind parameters of ``insert_values`` / ``insert_many_from`` for ``entries`` (from
    ``entry()``), all stamped with one ``occurred_at``."""
    now = utcnow()
    binds: dict[str, Any] = {}
    for i, audit in enumerate(entries):
        row = {**audit, "occurred_at": now}
        binds.update({f"audit{i}_{k}": row[k] for k in _ENTRY_COLUMNS})
    return binds


def insert_many_from(cte: Any, count: int) -> Any:
    """Like ``insert_from``, with ``count`` audit entries per row ``cte`` returns (one SELECT
    per entry, ``UNION ALL``; bind parameters ``audit<i>_<column>``), in that order. For a
    change that is audited by several entries (a token with its ID token's claims). Build it
    once per count and run it with ``execute_audited_many``."""
    table = AuditEvent.__table__
    selects = [select(*[bindparam(f"audit{i}_{name}", type_=table.c[name].type)
                        for name in _ENTRY_COLUMNS]).select_from(cte) for i in range(count)]
    source = selects[0] if count == 1 else union_all(*selects)
    return (insert(table).from_select(list(_ENTRY_COLUMNS), source)
            .returning(table.c.id))


def execute_audited_many(conn: Connection, engine: Engine, statement: Any,
                         params: dict[str, Any], audits: list[dict[str, Any]]) -> int:
    """``execute_audited`` for a statement from ``insert_many_from(cte, len(audits))``: the
    change and all its audit entries in one autocommit statement (one round trip, one atomic
    unit), then the after-commit hooks. Returns how many entries were written (0: the change
    matched no row, so nothing was written at all)."""
    written = len(prepared.fetch_all(conn, statement, {**params, **entry_params(audits)}))
    if written:
        audit_committed(engine, [(a["tag"], a["details"]) for a in audits]
                        * (written // len(audits)))
    return written


#: Per engine: what a commit that wrote audit events triggers (set by ``install_sealing``).
_ON_COMMIT: WeakKeyDictionary[Engine, Callable[[], None]] = WeakKeyDictionary()


def audit_committed(engine: Engine, written: Iterable[tuple[str, str]]) -> None:
    """What a Session's after-commit listeners do for audit events, for events committed
    outside a Session (an autocommit statement on ``engine``): seal as configured (batched
    poke, at once, or not at all) and count the business metrics. ``written``: (tag, details).
    """
    from servicekonto.metrics import count_audit_events

    sealing = _ON_COMMIT.get(engine)
    if sealing is not None:
        sealing()
    count_audit_events(written)


def canonical(event: AuditEvent, seq: int) -> bytes:
    """The bytes an entry's hash covers: every column except the hash itself."""
    payload = {
        "seq": seq,
        "id": event.id,
        "occurred_at": event.occurred_at.isoformat(),
        "tag": event.tag,
        "actor": event.actor,
        "subject_user_id": event.subject_user_id,
        "client_id": event.client_id,
        "ip": event.ip,
        "user_agent_hash": event.user_agent_hash,
        "details": event.details,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def chain_hash(previous_hash: str, event: AuditEvent, seq: int) -> str:
    return hashlib.sha256(previous_hash.encode() + b"\n" + canonical(event, seq)).hexdigest()


def _lock_head(session: Session) -> AuditChainHead | None:
    """Take the sealer's lock; None when another sealer holds it (PostgreSQL) right now."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # Take SQLite's write lock before reading, so two processes cannot seal from one head.
        session.execute(text("UPDATE audit_chain_head SET last_seq = last_seq WHERE id = 1"))
        return session.get(AuditChainHead, 1)
    stmt = select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update(skip_locked=True)
    return session.execute(stmt).scalar_one_or_none()


def seal(engine: Engine, batch_size: int = 1000, max_batches: int | None = None) -> int:
    """Seal unsealed events in id order; return how many were sealed (0 if another sealer runs)."""
    total = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            head = _lock_head(session)
            if head is None:
                return total
            events = session.execute(
                select(AuditEvent)
                .where(AuditEvent.chain_seq.is_(None))
                .order_by(AuditEvent.id)
                .limit(batch_size)
            ).scalars().all()
            if not events:
                return total
            seq, previous = head.last_seq, head.last_hash
            for event in events:
                seq += 1
                previous = chain_hash(previous, event, seq)
                event.chain_seq = seq
                event.entry_hash = previous
            session.execute(
                update(AuditChainHead)
                .where(AuditChainHead.id == 1)
                .values(last_seq=seq, last_hash=previous, sealed_at=utcnow())
            )
        total += len(events)
        batches += 1
        if len(events) < batch_size:
            return total
    return total


def seal_quietly(engine: Engine, batch_size: int) -> None:
    """Seal after a commit: failures are logged, never raised into the committed request."""
    try:
        seal(engine, batch_size=batch_size, max_batches=1)
    except Exception:  # noqa: BLE001 - the request's own work is committed already
        log.exception("audit sealing failed; 'servicekonto audit seal' will catch up")


class BackgroundSealer:
    """Seal in batches off the request path: ``poke()`` after a commit that recorded something
    wakes a daemon thread that waits ``interval`` seconds (collecting more commits), then seals
    everything pending. At most one sealing transaction per interval per process, instead of
    one per request; ``seal()``'s head lock keeps several processes (and cron) correct.

    The thread is started lazily in the process that pokes (so it survives ``fork`` in
    pre-forking servers: each worker starts its own). Unsealed entries live at most about
    ``interval`` (plus the sealing time) while the process runs; on a crash, ``servicekonto
    audit seal`` (cron) seals what is left.
    """

    def __init__(self, engine: Engine, batch_size: int, interval: float) -> None:
        import threading

        self.engine = engine
        self.batch_size = batch_size
        self.interval = interval
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._pid: int | None = None

    def poke(self) -> None:
        import os

        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    import threading

                    self._wake = threading.Event()
                    thread = threading.Thread(target=self._run, name="audit-sealer",
                                              daemon=True)
                    thread.start()
                    self._pid = os.getpid()
        self._wake.set()

    def _run(self) -> None:
        import time

        wake = self._wake
        while True:
            wake.wait()
            time.sleep(self.interval)
            wake.clear()
            try:
                seal(self.engine, batch_size=self.batch_size)
            except Exception:  # noqa: BLE001 - retried on the next poke, and by cron
                log.exception("background audit sealing failed; will retry")
                wake.set()


@dataclass(frozen=True)
class VerifyResult:
    sealed: int
    unsealed: int
    broken_seq: int | None = None
    broken_event_id: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def verify(engine: Engine, page_size: int = 2000) -> VerifyResult:
    """Walk the whole chain; stop at the first broken link."""
    from sqlalchemy import func

    with Session(engine) as session:
        unsealed = session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.chain_seq.is_(None))
        ) or 0
        head = session.get(AuditChainHead, 1)
        if head is None:
            return VerifyResult(0, unsealed, None, None, "the chain head row is missing")
        expected_seq, previous, checked = 1, GENESIS_HASH, 0
        while True:
            events = session.execute(
                select(AuditEvent)
                .where(AuditEvent.chain_seq >= expected_seq)
                .order_by(AuditEvent.chain_seq)
                .limit(page_size)
            ).scalars().all()
            if not events:
                break
            for event in events:
                if event.chain_seq != expected_seq:
                    return VerifyResult(checked, unsealed, expected_seq, None,
                                        f"entry with sequence {expected_seq} is missing")
                if event.entry_hash != chain_hash(previous, event, expected_seq):
                    return VerifyResult(checked, unsealed, expected_seq, event.id,
                                        "hash does not match the entry and its predecessor")
                previous = event.entry_hash
                expected_seq += 1
                checked += 1
            session.expunge_all()
        if head.last_seq != checked or head.last_hash != previous:
            return VerifyResult(checked, unsealed, checked + 1, None,
                                f"chain head says {head.last_seq} sealed entries, found {checked}")
        return VerifyResult(checked, unsealed)


def install_sealing(factory: Any, engine: Engine,
                    settings: dict[str, Any]) -> BackgroundSealer | None:
    """Seal after commits of ``factory``'s sessions that recorded events, as configured:
    right after the commit (``audit_seal_interval_ms = 0``), or batched by the returned
    BackgroundSealer; nothing when ``audit_seal_after_commit`` is false (cron: ``audit seal``).
    """
    from sqlalchemy import event

    @event.listens_for(factory, "after_rollback")
    def _forget_pending(session: Session) -> None:
        session.info.pop(PENDING_FLAG, None)

    if not settings["audit_seal_after_commit"]:
        return None
    batch = settings["audit_seal_batch_size"]
    interval_ms = settings["audit_seal_interval_ms"]
    sealer = BackgroundSealer(engine, batch, interval_ms / 1000) if interval_ms > 0 else None

    def _seal() -> None:
        if sealer is not None:
            sealer.poke()
        else:
            seal_quietly(engine, batch)

    _ON_COMMIT[engine] = _seal  # for events committed outside a Session (audit_committed)

    @event.listens_for(factory, "after_commit")
    def _seal_after_commit(session: Session) -> None:
        if session.info.pop(PENDING_FLAG, False):
            _seal()

    return sealer
