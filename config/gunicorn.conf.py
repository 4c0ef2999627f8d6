"""Gunicorn settings for Servicekonto: ``gunicorn -c config/gunicorn.conf.py wsgi:app``.

Every value can be overridden by an environment variable (``GUNICORN_*`` below) so one file
serves every machine. Sizing (docs/operations.md, "Sizing"): the expensive request is a password
check (Argon2id, m=19 MiB, t=2: ~40-60 ms of one core and 19 MiB while it runs), everything
else is short database work. Hence:

* ``workers`` = number of cores (CPU-bound hashing gains nothing from more processes), at
  least 2 so one worker's restart never leaves the instance without a process;
* ``threads`` = 4 per worker (``gthread``): database and Redis round trips overlap; the GIL is
  released inside argon2 and psycopg. workers x threads must stay below
  ``database_pool_size + database_max_overflow`` (default 10 + 10) per worker, and the sum
  over all instances below PostgreSQL's ``max_connections`` (minus admin/replication slots).
  On PostgreSQL each worker has two pools of that size (transactions; autocommit hot paths),
  so count up to twice the threads per worker: a request holds at most one of each;
* ``timeout`` 30 s: above ``database_statement_timeout_ms`` (10 s) plus a back-channel logout
  timeout; ``graceful_timeout`` 30 s: on SIGTERM (deploy) workers finish requests in flight;
* ``max_requests`` (+ jitter) recycles workers now and then to bound memory growth.

``preload_app = False`` (deliberately). ``create_app`` opens things that must not cross a
``fork()``: the SQLAlchemy engine's pooled connections (outside ``testing`` it reads and may
create signing keys at start, so the pool holds a live connection; two workers sharing one
PostgreSQL socket corrupt each other's protocol stream), the Redis client's connection pool, the
``limits`` storage, and the readiness check's thread pool. The key ring (oidc/keys.py) and the
client JWKS cache are per-process caches that re-check the database every few seconds; they
would be correct after a fork, but gain nothing worth the risk. Without preloading each worker
builds its own app after the fork: start-up costs one app build per worker (about a second),
and a broken configuration still stops the start (the worker fails to boot, gunicorn exits).
If you must preload (memory), call ``app.extensions["servicekonto.db"].engine.dispose(
close=False)`` and reset the Redis pools in ``post_fork``.

Prometheus: set ``PROMETHEUS_MULTIPROC_DIR`` (e.g. ``/run/servicekonto/metrics``) in the
environment of gunicorn, a directory private to this gunicorn; it is emptied at start and dead
workers are marked. Without it each worker answers ``/metrics`` with its own counters only.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")
worker_class = "gthread"
workers = _int("GUNICORN_WORKERS", max(2, multiprocessing.cpu_count()))
threads = _int("GUNICORN_THREADS", 4)
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)  # nginx keeps upstream connections open (keepalive)
max_requests = _int("GUNICORN_MAX_REQUESTS", 20000)
max_requests_jitter = max(0, max_requests // 10)
preload_app = False
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108 - heartbeat
limit_request_line = 8190
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")

# Access log: path without query string (queries can carry login_hint, codes or e-mail
# addresses), status, bytes, duration and the request id that the app logs too.
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None
access_log_format = ('%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms '
                     'rid=%({x-request-id}o)s')
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
proc_name = "servicekonto"


def on_starting(server) -> None:  # noqa: ANN001
    """Fresh multiprocess metrics directory per gunicorn start (stale files would add up)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, mode=0o700, exist_ok=True)
        for stale in path.glob("*.db"):  # only prometheus_client's files, nothing else
            stale.unlink()


def child_exit(server, worker) -> None:  # noqa: ANN001
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
