"""OpenID Connect Back-Channel Logout 1.0: telling portals that a citizen's session ended.

The pipeline, in order:

1. ``login_session.end()`` sends the ``logged_out`` signal (user_id, sid). ``_on_logged_out``
   finds every portal with a ``backchannel_logout_uri`` that took part in that session
   (tokens carrying that ``sid``; for tokens without a sid, every portal the citizen holds live
   tokens for), adds one ``LogoutDelivery`` row per portal and revokes the session's tokens,
   all in the caller's unit of work: they commit together with the logout's audit event.
2. After that commit a daemon thread (own app context, own DB session) delivers the new rows,
   then retries a few other due deliveries ("opportunistic retry"). The citizen's logout
   response never waits for a portal.
3. A delivery is claimed with a conditional UPDATE (a lease on ``next_attempt_at``), so the
   thread, ``servicekonto logout deliver`` (cron) and other workers never POST the same row
   twice at once. The HTTP request runs outside any transaction.
4. Success (any 2xx): ``delivered_at`` and audit DELIVERED. Failure: ``attempts + 1``,
   ``last_error`` and an exponential backoff; after ``backchannel_logout_max_attempts``
   attempts ``failed_at`` and audit FAILED.

The logout token (section 2.4 of the spec) is a JWT signed with the provider's RS256 key:
``typ: logout+jwt``; claims iss, aud (the client_id), iat, exp (two minutes), jti, sub (the
pairwise subject of that portal), sid and the back-channel logout event; never a nonce.

Other packages may call :func:`queue_logout` (e.g. consent withdrawal for one portal).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click
from flask import Flask, Response, current_app, has_app_context
from flask.cli import with_appcontext
from sqlalchemy import and_, or_, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from oidc.models import Client, LogoutDelivery, Token
from servicekonto.audit.service import record
from servicekonto.audit.tags import AuditTag
from servicekonto.db import utcnow

log = logging.getLogger(__name__)

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYPE = "logout+jwt"
#: Lifetime of a logout token: long enough for clock skew, short against replay.
LOGOUT_TOKEN_LIFETIME_SECONDS = 120
#: First retry after this long, doubling each attempt (30 s, 1 min, 2 min, 4 min, 8 min ...).
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 6 * 3600
#: How many other due deliveries a logout's thread retries after its own.
OPPORTUNISTIC_RETRY_LIMIT = 20

EXTENSION = "servicekonto.backchannel"
_PENDING_IDS = "servicekonto.logout_deliveries_pending"
_PENDING_APP = "servicekonto.logout_deliveries_app"
_PENDING_QUEUED_AT = "servicekonto.logout_deliveries_queued_at"


# -- registration ---------------------------------------------------------------------------

class BackchannelState:
    """Per-app bookkeeping: the delivery threads started (tests and shutdown can wait)."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def track(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)

    def wait(self, timeout: float = 10.0) -> bool:
        """Wait for running delivery threads; True when all finished within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)


def register(app: Flask) -> None:
    """Listen for logouts, deliver after commit (called by ``oidc.logout.register``)."""
    if EXTENSION in app.extensions:
        return
    from servicekonto.accounts.login_session import logged_out

    app.extensions[EXTENSION] = BackchannelState()
    # A module-level receiver, connected once per process (blinker de-duplicates); it acts
    # only for apps that registered this extension.
    logged_out.connect(_on_logged_out)

    factory = app.extensions["servicekonto.db"]._factory
    if not sa_event.contains(factory, "after_commit", _after_commit):
        sa_event.listen(factory, "after_commit", _after_commit)
        sa_event.listen(factory, "after_rollback", _after_rollback)
    from servicekonto.web import browser_only_hooks

    with browser_only_hooks(app):  # protocol endpoints never end a login session
        app.after_request(_commit_orphaned_deliveries)


def _on_logged_out(sender: Any, user_id: int | None = None, sid: str | None = None,
                   **_: Any) -> None:
    app = sender if isinstance(sender, Flask) else (
        current_app._get_current_object() if has_app_context() else None)  # type: ignore[attr-defined]
    if app is None or EXTENSION not in app.extensions or user_id is None:
        return
    from servicekonto.db import db

    try:
        queue_logout(db.session, user_id=int(user_id), sid=sid, app=app)
    except Exception:  # noqa: BLE001 - the citizen's logout must go on regardless
        db.session.rollback()
        log.exception("could not queue back-channel logouts for session of user %s", user_id)


def _after_commit(session: Session) -> None:
    ids = session.info.pop(_PENDING_IDS, None)
    app = session.info.pop(_PENDING_APP, None)
    queued_at = session.info.pop(_PENDING_QUEUED_AT, None)
    if ids and app is not None:
        start_delivery_thread(app, list(ids), queued_at=queued_at)


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_IDS, None)
    session.info.pop(_PENDING_APP, None)
    session.info.pop(_PENDING_QUEUED_AT, None)


def _commit_orphaned_deliveries(response: Response) -> Response:
    """Commit deliveries queued after the view's last commit (e.g. ``end()`` after commit).

    The account pages commit their audit event and then call ``login_session.end()``; the rows
    the signal added would otherwise be rolled back when the request ends.
    """
    from servicekonto.db import get_db

    scoped = get_db()._scoped
    if scoped is None or not scoped.registry.has():  # this request used no database session
        return response
    session = scoped()
    if session.info.get(_PENDING_IDS):
        try:
            session.commit()
        except Exception:  # noqa: BLE001 - the logout itself already happened
            session.rollback()
            log.exception("could not store back-channel logout deliveries")
    return response


# -- queueing -------------------------------------------------------------------------------

def _session_clients(session: Session, user_id: int, sid: str | None) -> list[Client]:
    """Portals with a back-channel logout URI that took part in this login session."""
    now = utcnow()
    live_without_sid = and_(
        Token.user_id == user_id,
        Token.sid.is_(None),
        Token.revoked_at.is_(None),
        or_(Token.access_expires_at > now, Token.refresh_expires_at > now),
    )
    condition = live_without_sid if sid is None else or_(Token.sid == sid, live_without_sid)
    client_pks = select(Token.client_pk).where(condition).distinct()
    stmt = (select(Client)
            .where(Client.id.in_(client_pks), Client.backchannel_logout_uri.is_not(None),
                   Client.backchannel_logout_uri != "")
            .order_by(Client.id))
    return list(session.scalars(stmt))


def queue_logout(session: Session, *, user_id: int, sid: str | None,
                 clients: Iterable[Client] | None = None, app: Flask | None = None,
                 revoke_session_tokens: bool = True) -> list[LogoutDelivery]:
    """Queue logout tokens for the portals of ``sid`` (or ``clients``) in ``session``.

    Nothing is sent before the caller commits; then a background thread delivers. Revokes the
    tokens issued in that session unless told not to.
    """
    from oidc.subjects import subject_for

    targets = (list(clients) if clients is not None
               else _session_clients(session, user_id, sid))
    deliveries = []
    queued_at = utcnow()
    for client in targets:
        if not client.backchannel_logout_uri:
            continue
        delivery = LogoutDelivery(client_pk=client.id, user_id=user_id,
                                  sub=subject_for(client, user_id), sid=sid,
                                  next_attempt_at=queued_at)
        session.add(delivery)
        deliveries.append(delivery)
    if revoke_session_tokens and sid:
        session.execute(update(Token)
                        .where(Token.sid == sid, Token.revoked_at.is_(None))
                        .values(revoked_at=utcnow())
                        .execution_options(synchronize_session=False))
    if deliveries:
        session.flush()
        session.info.setdefault(_PENDING_IDS, []).extend(d.id for d in deliveries)
        session.info[_PENDING_QUEUED_AT] = max(queued_at,
                                               session.info.get(_PENDING_QUEUED_AT, queued_at))
        if app is None and has_app_context():
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        if app is not None:
            session.info[_PENDING_APP] = app
    return deliveries


# -- the logout token -----------------------------------------------------------------------

def _joserfc_key(key: Any) -> Any:
    """Accept a joserfc key, an authlib.jose key, a cryptography key or a private JWK dict."""
    from joserfc.jwk import Key as JoseKey
    from joserfc.jwk import RSAKey

    if isinstance(key, JoseKey):
        return key
    if isinstance(key, dict):
        return RSAKey.import_key(key)
    as_dict = getattr(key, "as_dict", None)
    if callable(as_dict):  # authlib.jose key
        return RSAKey.import_key(as_dict(is_private=True))
    return RSAKey.import_key(key)  # cryptography key object or PEM


def build_logout_token(*, issuer: str, client_id: str, sub: str, sid: str | None,
                       now: int | None = None) -> str:
    """A signed logout token for one portal (RS256, ``typ: logout+jwt``, no nonce)."""
    from joserfc import jwt

    from oidc.keys import signing_key

    kid, key = signing_key("RS256")
    iat = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": client_id,
        "iat": iat,
        "exp": iat + LOGOUT_TOKEN_LIFETIME_SECONDS,
        "jti": secrets.token_urlsafe(24),
        "sub": sub,
        "events": {BACKCHANNEL_EVENT: {}},
    }
    if sid:
        claims["sid"] = sid
    header = {"alg": "RS256", "kid": kid, "typ": LOGOUT_TOKEN_TYPE}
    return jwt.encode(header, claims, _joserfc_key(key))


# -- delivering -----------------------------------------------------------------------------

@dataclass
class DeliveryReport:
    delivered: list[int] = field(default_factory=list)
    retry_later: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    def merge(self, other: DeliveryReport) -> None:
        self.delivered += other.delivered
        self.retry_later += other.retry_later
        self.failed += other.failed


def backoff_seconds(attempts: int) -> int:
    """Delay before the next attempt after ``attempts`` failed ones."""
    return min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))


def _claim(session: Session, delivery_id: int, seen_next: dt.datetime, lease: int,
           now: dt.datetime) -> bool:
    """Take a due delivery for ``lease`` seconds; False when another worker was faster.

    The conditional UPDATE is the lock: it matches only while the row is still due and
    unchanged since we read it, so of two workers at most one gets a row count of 1 (and a row
    in flight is not due: its ``next_attempt_at`` is the end of the lease).
    """
    if seen_next > now:
        log.info("back-channel logout delivery %s is not due until %s", delivery_id,
                 seen_next.isoformat())
        return False
    result = session.execute(
        update(LogoutDelivery)
        .where(LogoutDelivery.id == delivery_id,
               LogoutDelivery.next_attempt_at == seen_next,
               LogoutDelivery.next_attempt_at <= now,
               LogoutDelivery.delivered_at.is_(None),
               LogoutDelivery.failed_at.is_(None))
        .values(next_attempt_at=utcnow() + dt.timedelta(seconds=lease))
        .execution_options(synchronize_session=False))
    session.commit()
    if result.rowcount != 1:
        log.info("back-channel logout delivery %s was taken by another worker", delivery_id)
    return result.rowcount == 1


def _post(uri: str, logout_token: str, timeout: float) -> str | None:
    """POST the token; None on success, else a short reason."""
    import requests

    try:
        response = requests.post(
            uri, data={"logout_token": logout_token}, timeout=timeout, allow_redirects=False,
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "Accept": "application/json", "Cache-Control": "no-store"})
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= response.status_code < 300:
        return None
    body = " ".join(response.text.split())[:200]
    return f"HTTP {response.status_code}: {body}"[:500]


def deliver_one(session: Session, delivery_id: int, settings: dict[str, Any],
                report: DeliveryReport, *, now: dt.datetime | None = None) -> None:
    """Claim, send and record one delivery (each step in its own short transaction).

    ``now`` is the time the delivery counts as due against (default: the clock).
    """
    delivery = session.get(LogoutDelivery, delivery_id, populate_existing=True)
    if delivery is None or delivery.delivered_at or delivery.failed_at:
        log.info("back-channel logout delivery %s is gone or finished", delivery_id)
        return
    timeout = float(settings["backchannel_logout_timeout_seconds"])
    if not _claim(session, delivery_id, delivery.next_attempt_at, int(timeout) + 60,
                  now or utcnow()):
        return
    session.refresh(delivery)
    client = session.get(Client, delivery.client_pk)
    if client is None or not client.backchannel_logout_uri:
        delivery.failed_at = utcnow()
        delivery.last_error = "client removed or has no backchannel_logout_uri"
        session.commit()
        report.failed.append(delivery_id)
        return
    try:
        token = build_logout_token(issuer=settings["issuer"].rstrip("/"),
                                   client_id=client.client_id, sub=delivery.sub,
                                   sid=delivery.sid)
        error = _post(client.backchannel_logout_uri, token, timeout)
    except Exception as exc:  # noqa: BLE001 - e.g. no signing key yet: retry later
        log.exception("building the logout token failed")
        error = f"{type(exc).__name__}: {exc}"[:500]

    now = utcnow()
    delivery.attempts += 1
    details = {"delivery_id": delivery.id, "attempts": delivery.attempts}
    if error is None:
        delivery.delivered_at = now
        delivery.last_error = None
        record(session, AuditTag.OIDC_BACKCHANNEL_LOGOUT_DELIVERED, actor="system",
               subject_user_id=delivery.user_id, client_id=client.client_id, details=details)
        report.delivered.append(delivery_id)
    else:
        delivery.last_error = error
        log.warning("back-channel logout to %s failed (attempt %s): %s", client.client_id,
                    delivery.attempts, error)
        if delivery.attempts >= int(settings["backchannel_logout_max_attempts"]):
            delivery.failed_at = now
            record(session, AuditTag.OIDC_BACKCHANNEL_LOGOUT_FAILED, actor="system",
                   subject_user_id=delivery.user_id, client_id=client.client_id,
                   details={**details, "error": error[:200]})
            report.failed.append(delivery_id)
        else:
            delivery.next_attempt_at = now + dt.timedelta(
                seconds=backoff_seconds(delivery.attempts))
            report.retry_later.append(delivery_id)
    session.commit()


def deliver_pending(session: Session, settings: dict[str, Any], *,
                    ids: Sequence[int] | None = None, include_not_due: bool = False,
                    limit: int = 500, queued_at: dt.datetime | None = None) -> DeliveryReport:
    """Deliver the given deliveries, or every due one.

    ``include_not_due`` (operator override, ``logout deliver --all``) first makes every pending
    delivery due, waiting backoffs included; a delivery in flight at that moment may then be
    sent twice, which a portal must tolerate anyway (it just ends no session the second time).

    ``queued_at`` (with ``ids``: the deliveries a commit just queued) makes them due from that
    time even if this clock reads earlier, e.g. after a step back between the request that
    queued them and this thread; a claimed row is still safe, its lease ends well after it.
    """
    pending = (LogoutDelivery.delivered_at.is_(None), LogoutDelivery.failed_at.is_(None))
    if include_not_due:
        now = utcnow()
        session.execute(update(LogoutDelivery)
                        .where(*pending, LogoutDelivery.next_attempt_at > now)
                        .values(next_attempt_at=now)
                        .execution_options(synchronize_session=False))
        session.commit()
    now = utcnow() if queued_at is None else max(utcnow(), queued_at)
    stmt = select(LogoutDelivery.id).where(*pending, LogoutDelivery.next_attempt_at <= now)
    if ids is not None:
        stmt = stmt.where(LogoutDelivery.id.in_(list(ids)))
    stmt = stmt.order_by(LogoutDelivery.next_attempt_at, LogoutDelivery.id).limit(limit)
    found = list(session.scalars(stmt))
    session.commit()
    if ids is not None and len(found) < len(set(ids)):
        # Normal when another worker (an opportunistic retry pass, the cron command) claimed
        # a fresh row first: it sends it; logged so that a row nobody sent can be traced.
        log.info("back-channel logout deliveries %s are not due here (claimed elsewhere?)",
                 sorted(set(ids) - set(found)))
    report = DeliveryReport()
    for delivery_id in found:
        try:
            deliver_one(session, delivery_id, settings, report,
                        now=None if queued_at is None else max(utcnow(), queued_at))
        except Exception:  # noqa: BLE001 - one broken row must not stop the others
            session.rollback()
            log.exception("back-channel logout delivery %s failed unexpectedly", delivery_id)
    return report


def start_delivery_thread(app: Flask, ids: list[int],
                          queued_at: dt.datetime | None = None) -> threading.Thread:
    """Deliver ``ids`` (then other due deliveries) in a daemon thread with its own session."""

    def run() -> None:
        with app.app_context():
            database = app.extensions["servicekonto.db"]
            settings = app.config["SERVICEKONTO"]
            try:
                with database.independent_session() as session:
                    deliver_pending(session, settings, ids=ids, queued_at=queued_at)
                    deliver_pending(session, settings, limit=OPPORTUNISTIC_RETRY_LIMIT)
            except Exception:  # noqa: BLE001 - "servicekonto logout deliver" catches up
                log.exception("back-channel logout delivery thread failed")

    thread = threading.Thread(target=run, name="backchannel-logout", daemon=True)
    state = app.extensions.get(EXTENSION)
    if state is not None:
        state.track(thread)
    thread.start()
    return thread


# -- command line ---------------------------------------------------------------------------

@click.group("logout")
def logout_cli() -> None:
    """Back-channel logout deliveries to portals."""


@logout_cli.command("deliver")
@click.option("--all", "include_not_due", is_flag=True,
              help="Also retry deliveries whose next attempt is not due yet.")
@click.option("--limit", default=500, show_default=True, type=int)
@with_appcontext
def deliver_command(include_not_due: bool, limit: int) -> None:
    """Deliver due back-channel logout tokens (run from cron, e.g. every minute)."""
    database = current_app.extensions["servicekonto.db"]
    with database.independent_session() as session:
        report = deliver_pending(session, current_app.config["SERVICEKONTO"],
                                 include_not_due=include_not_due, limit=limit)
    click.echo(f"delivered {len(report.delivered)}, retry later {len(report.retry_later)}, "
               f"given up {len(report.failed)}")


@logout_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@with_appcontext
def status_command(as_json: bool) -> None:
    """List deliveries that are pending or were given up."""
    import json

    database = current_app.extensions["servicekonto.db"]
    with database.independent_session() as session:
        rows = session.execute(
            select(LogoutDelivery, Client.client_id)
            .join(Client, Client.id == LogoutDelivery.client_pk)
            .where(LogoutDelivery.delivered_at.is_(None))
            .order_by(LogoutDelivery.id)).all()
        for delivery, client_id in rows:
            state = "given up" if delivery.failed_at else "pending"
            if as_json:
                click.echo(json.dumps({
                    "id": delivery.id, "client_id": client_id, "state": state,
                    "attempts": delivery.attempts,
                    "next_attempt_at": delivery.next_attempt_at.isoformat(),
                    "last_error": delivery.last_error}))
            else:
                click.echo(f"{delivery.id}\t{client_id}\t{state}\tattempts={delivery.attempts}"
                           f"\tnext={delivery.next_attempt_at.isoformat()}"
                           f"\t{delivery.last_error or ''}")
