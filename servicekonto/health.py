"""Liveness, readiness and the Redis "reduced mode".

``/healthz`` (liveness): the process answers; no dependency is checked, so a database outage
never makes an orchestrator kill every instance.

``/readyz`` (readiness), JSON, no secrets, each check bounded by ``READY_TIMEOUT_SECONDS``:

* ``database``: ``SELECT 1`` answers;
* ``migrations``: the database is at this code's Alembic head (or *ahead* of it, which is fine:
  the next release migrated first and the expand/contract rules in docs/operations.md keep the
  old code working); behind the head means "run ``servicekonto db upgrade``" and not ready;
* ``signing_keys``: every algorithm of ``id_token_signing_algs`` has a key that signs now;
* ``redis`` (when ``redis_url`` is set): ``PING``. Redis being down does **not** make the
  instance unready: the service runs in the documented reduced mode (``"status": "degraded"``,
  HTTP 200) instead of taking every instance out of the load balancer at once.

Reduced mode (Redis configured but unreachable), decided per process by :class:`RedisGuard`:

* web sessions are read and written in the database store (sessions that lived only in Redis
  are not visible, so citizens may have to log in again);
* rate-limit counters fall back to per-process memory (limits are per instance meanwhile);
* ``private_key_jwt`` ``jti`` replay protection falls back to the ``oidc_used_assertions`` table;
* client JWKS documents are cached per process only.

The guard logs one WARNING when Redis goes away and one when it is back, never per request, and
after a failure skips Redis for ``RETRY_SECONDS`` so requests do not each wait for a timeout.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 2.0
REDUCED_MODE = ("sessions in the database (citizens may need to log in again), rate limits per "
                "process, jti replay cache in the database, client JWKS cached per process")

bp = Blueprint("health", __name__)


class RedisGuard:
    """Shared per-process view of whether Redis works; all Redis users go through it.

    ``call(fn, fallback)`` runs ``fn()`` unless Redis is known to be down (then ``fallback()``);
    a Redis error marks it down (one WARNING) and runs the fallback; the first success after a
    failure marks it up again (one WARNING).
    """

    RETRY_SECONDS = 2.0

    def __init__(self, client: Any, retry_seconds: float | None = None) -> None:
        self.client = client
        self.retry_seconds = self.RETRY_SECONDS if retry_seconds is None else retry_seconds
        self._lock = threading.Lock()
        self.up = True
        self._down_since: float | None = None
        self._retry_at = 0.0
        #: monotonic time of the last moment Redis was known to be down (None: never)
        self.last_down_at: float | None = None

    @staticmethod
    def errors() -> tuple[type[BaseException], ...]:
        import redis

        found: list[type[BaseException]] = [redis.RedisError, OSError]
        try:
            from limits.errors import StorageError

            found.append(StorageError)
        except ImportError:  # pragma: no cover - older limits
            pass
        return tuple(found)

    def available(self) -> bool:
        """True when Redis should be tried now."""
        if self.up:
            return True
        return time.monotonic() >= self._retry_at

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self._retry_at = now + self.retry_seconds
            self.last_down_at = now
            if not self.up:
                return
            self.up = False
            self._down_since = now
        log.warning("redis unavailable (%s): reduced mode: %s", type(exc).__name__, REDUCED_MODE)

    def succeeded(self) -> None:
        if self.up:
            return
        with self._lock:
            if self.up:
                return
            self.up = True
            down_for = time.monotonic() - (self._down_since or time.monotonic())
            self.last_down_at = time.monotonic()
        log.warning("redis available again after %.0f s: normal mode", down_for)

    def recently_down(self, within_seconds: float) -> bool:
        last = self.last_down_at
        return last is not None and time.monotonic() - last < within_seconds

    def call(self, fn: Callable[[], Any], fallback: Callable[[], Any]) -> Any:
        if not self.available():
            return fallback()
        try:
            result = fn()
        except self.errors() as exc:
            self.failed(exc)
            return fallback()
        self.succeeded()
        return result

    def ping(self) -> bool:
        try:
            self.client.ping()
        except self.errors() as exc:
            self.failed(exc)
            return False
        self.succeeded()
        return True


def redis_guard(app: Flask | None = None) -> RedisGuard | None:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return app.extensions.get("servicekonto.redis_guard")


# -- checks ---------------------------------------------------------------------------------

_HEAD: dict[str, Any] = {}


def _known_revisions() -> tuple[str | None, set[str]]:
    if not _HEAD:
        from alembic.script import ScriptDirectory

        from servicekonto.migrate import alembic_config

        script = ScriptDirectory.from_config(alembic_config())
        _HEAD["head"] = script.get_current_head()
        _HEAD["all"] = {rev.revision for rev in script.walk_revisions()}
    return _HEAD["head"], _HEAD["all"]


def _check_database(app: Flask) -> dict[str, Any]:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    engine = app.extensions["servicekonto.db"].engine
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL statement_timeout = 2000"))
        conn.execute(text("SELECT 1"))
        conn.rollback()
        try:  # read directly: alembic's MigrationContext logs at INFO on every probe
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except DBAPIError:
            current = None
        conn.rollback()
    head, known = _known_revisions()
    if current == head:
        migrations = {"ok": True, "revision": current}
    elif current is not None and current not in known:
        migrations = {"ok": True, "revision": current,
                      "note": "database is ahead of this release (a newer release migrated)"}
    else:
        migrations = {"ok": False, "revision": current, "expected": head,
                      "note": "run 'servicekonto db upgrade'"}
    return {"database": {"ok": True}, "migrations": migrations}


def _check_keys(app: Flask) -> dict[str, Any]:
    from oidc.keys import keyring
    from servicekonto.db import utcnow

    now = utcnow()
    wanted = list(app.config["SERVICEKONTO"]["id_token_signing_algs"])
    signing = {i.alg for i in keyring(app).infos() if i.signs_at(now)}
    missing = [alg for alg in wanted if alg not in signing]
    result: dict[str, Any] = {"ok": not missing}
    if missing:
        result["missing"] = missing
    return {"signing_keys": result}


def _check_redis(app: Flask) -> dict[str, Any]:
    guard = redis_guard(app)
    if guard is None:
        return {}
    if guard.ping():
        return {"redis": {"ok": True}}
    return {"redis": {"ok": False, "mode": "reduced", "reduced_mode": REDUCED_MODE}}


_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")


def readiness(app: Flask, timeout: float = READY_TIMEOUT_SECONDS) -> tuple[bool, dict[str, Any]]:
    """(ready, report). Each check runs in a worker thread bounded by ``timeout``."""
    plan: list[tuple[Callable[[Flask], dict[str, Any]], list[str]]] = [
        (_check_database, ["database", "migrations"]),
        (_check_keys, ["signing_keys"]),
    ]
    if redis_guard(app) is not None:
        plan.append((_check_redis, ["redis"]))
    futures = [(_POOL.submit(fn, app), names) for fn, names in plan]
    deadline = time.monotonic() + timeout
    checks: dict[str, Any] = {}
    for future, names in futures:
        try:
            checks.update(future.result(timeout=max(0.0, deadline - time.monotonic())))
        except concurrent.futures.TimeoutError:
            for name in names:
                checks[name] = {"ok": False, "error": "timeout"}
        except Exception as exc:  # noqa: BLE001 - a failing dependency is a report, not a 500
            for name in names:
                checks.setdefault(name, {"ok": False, "error": type(exc).__name__})
    if "database" not in checks:  # the database check failed: the others cannot be trusted
        checks["database"] = {"ok": False, "error": "unavailable"}
    essential = [v for k, v in checks.items() if k != "redis"]
    ready = all(check.get("ok") for check in essential)
    degraded = "redis" in checks and not checks["redis"].get("ok")
    status = "ok" if ready and not degraded else ("degraded" if ready else "unavailable")
    return ready, {"status": status, "checks": checks}


@bp.get("/healthz")
def healthz() -> Response:
    response = jsonify(status="ok")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/readyz")
def readyz() -> Response:
    ready, report = readiness(current_app._get_current_object())  # type: ignore[attr-defined]
    response = jsonify(report)
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    if not ready:
        response.headers["Retry-After"] = "5"
    return response


def init_health(app: Flask) -> None:
    app.register_blueprint(bp)
    # Probes must not create sessions, count as logins or be throttled: nothing to do, they do
    # not touch the session. They are exempt from CSRF (GET only).
