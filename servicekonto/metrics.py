"""Prometheus metrics at ``/metrics``.

* ``servicekonto_http_request_duration_seconds{endpoint,method,status}``: latency histogram per
  Flask endpoint (the route name, never the raw path, so label values stay bounded);
* ``servicekonto_logins_total{outcome}``: success / failure / locked;
* ``servicekonto_tokens_issued_total{grant}``: authorization_code / refresh_token /
  client_credentials;
* ``servicekonto_consent_decisions_total{decision}``: granted / refused / withdrawn;
* ``servicekonto_backchannel_logout_total{outcome}``: delivered / failed (given up);
* ``servicekonto_errors_total{kind}``: HTTP 5xx responses by status and unhandled exceptions.

Business counters are derived from *committed* audit events (one listener on SQLAlchemy
sessions): a rolled-back login is not counted, and no view needs metrics code.

Under gunicorn set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory writable by the workers
(``config/gunicorn.conf.py`` empties it at start and marks dead workers); every worker then
writes its samples there and ``/metrics`` aggregates all of them.

Access: only from ``metrics_allowed_networks`` (default loopback) or with
``Authorization: Bearer <metrics_token>`` when a token is configured; others get a 404.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import time
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

REQUEST_LATENCY = Histogram(
    "servicekonto_http_request_duration_seconds", "Request latency per endpoint",
    ["endpoint", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
LOGINS = Counter("servicekonto_logins_total", "Login attempts by outcome", ["outcome"])
TOKENS = Counter("servicekonto_tokens_issued_total", "Tokens issued by grant type", ["grant"])
CONSENT = Counter("servicekonto_consent_decisions_total", "Consent decisions", ["decision"])
BACKCHANNEL = Counter("servicekonto_backchannel_logout_total",
                      "Back-channel logout deliveries by outcome", ["outcome"])
ERRORS = Counter("servicekonto_errors_total", "Server errors", ["kind"])

_PENDING = "servicekonto.metrics_pending"
_SIMPLE_TAGS: dict[str, tuple[Counter, str]] = {
    "account:login:success": (LOGINS, "success"),
    "account:login:failure": (LOGINS, "failure"),
    "account:login:locked": (LOGINS, "locked"),
    "oidc:token:refreshed": (TOKENS, "refresh_token"),
    "consent:grant:granted": (CONSENT, "granted"),
    "consent:grant:refused": (CONSENT, "refused"),
    "consent:grant:withdrawn": (CONSENT, "withdrawn"),
    "oidc:backchannel_logout:delivered": (BACKCHANNEL, "delivered"),
    "oidc:backchannel_logout:failed": (BACKCHANNEL, "failed"),
}

bp = Blueprint("metrics", __name__)


# -- business counters from committed audit events ------------------------------------------

def _label(tag: str, details: str | None) -> tuple[Counter, str] | None:
    if tag == "oidc:token:issued":
        try:
            grant = json.loads(details or "{}").get("grant_type", "unknown")
        except ValueError:
            grant = "unknown"
        return TOKENS, str(grant)[:40]
    return _SIMPLE_TAGS.get(tag)


def _after_flush(session: Session, _context: Any) -> None:
    from servicekonto.audit.models import AuditEvent

    pending = None
    for obj in session.new:
        if isinstance(obj, AuditEvent):
            label = _label(obj.tag, obj.details)
            if label is None:
                continue
            if pending is None:
                pending = session.info.setdefault(_PENDING, [])
            pending.append(label)


def _after_commit(session: Session) -> None:
    from servicekonto.audit.service import INSERTED_KEY

    for counter, value in session.info.pop(_PENDING, ()):
        counter.labels(value).inc()
    # Events written with audit.insert_now (hot paths) bypass the flush.
    count_audit_events(session.info.pop(INSERTED_KEY, ()))


def count_audit_events(written: Iterable[tuple[str, str]]) -> None:
    """Count committed audit events given as (tag, details): also called directly for events
    committed outside a Session (``audit.service.audit_committed``)."""
    for tag, details in written:
        label = _label(tag, details)
        if label is not None:
            label[0].labels(label[1]).inc()


def _after_rollback(session: Session) -> None:
    from servicekonto.audit.service import INSERTED_KEY

    session.info.pop(_PENDING, None)
    session.info.pop(INSERTED_KEY, None)


_LISTENING = False


def _listen() -> None:
    global _LISTENING
    if _LISTENING:
        return
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_rollback", _after_rollback)
    _LISTENING = True


# -- request latency and errors -------------------------------------------------------------

def _endpoint() -> str:
    if request.url_rule is None or not request.endpoint:
        return "unmatched"  # 404s: one label, never the raw path
    return request.endpoint


def init_metrics(app: Flask) -> None:
    _listen()
    app.register_blueprint(bp)

    @app.before_request
    def _start_timer() -> None:
        g._metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("_metrics_started", None)
        if started is not None and request.endpoint != "metrics.metrics":
            REQUEST_LATENCY.labels(_endpoint(), request.method,
                                   str(response.status_code)).observe(
                time.perf_counter() - started)
        if response.status_code >= 500:
            ERRORS.labels(f"http_{response.status_code}").inc()
        return response

    from flask import got_request_exception

    def _exception(sender: Any, exception: BaseException, **_extra: Any) -> None:
        ERRORS.labels("exception").inc()

    got_request_exception.connect(_exception, app, weak=False)


# -- the endpoint ---------------------------------------------------------------------------

def _allowed() -> bool:
    settings = current_app.config["SERVICEKONTO"]
    token = settings["metrics_token"]
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(
            header[7:].strip().encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    for network in settings["metrics_allowed_networks"]:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            log.warning("metrics_allowed_networks: invalid network %r", network)
    return False


def render() -> bytes:
    """The exposition text: every worker's samples in multiprocess mode, else this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


@bp.get("/metrics")
def metrics() -> Response:
    if not _allowed():
        from werkzeug.exceptions import NotFound

        raise NotFound()
    response = Response(render(), mimetype=CONTENT_TYPE_LATEST.split(";")[0])
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    response.headers["Cache-Control"] = "no-store"
    return response
