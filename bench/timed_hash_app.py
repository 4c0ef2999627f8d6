"""``wsgi:app`` with the Argon2id verifies timed inside the server (``run.py --time-hash``).

The pinned ceiling probe runs while the server is idle; this measures the hashes *in* the
login scenario (same threads, same core, the scenario's own load on the other core): the
hashing thread's CPU time per verify, summed, read before and after the scenario from
``GET /_bench/argon2``. Bench only: never deploy this module.
"""

from __future__ import annotations

import threading
import time

from servicekonto.accounts import passwords
from wsgi import app

_lock = threading.Lock()
_totals = {"verifies": 0, "cpu_s": 0.0}
_verify = passwords.verify_password


def _timed_verify(password_hash: str, password: str) -> bool:
    start = time.thread_time()  # this thread's CPU only: a wait for the slot costs none
    try:
        return _verify(password_hash, password)
    finally:
        spent = time.thread_time() - start
        with _lock:
            _totals["verifies"] += 1
            _totals["cpu_s"] += spent


passwords.verify_password = _timed_verify  # type: ignore[assignment]


@app.get("/_bench/argon2")
def _argon2_totals() -> dict[str, float]:
    with _lock:
        return dict(_totals)
