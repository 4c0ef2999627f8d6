"""Counting attempts with the ``limits`` library (the engine underneath Flask-Limiter).

Used directly rather than through Flask-Limiter's decorators because login throttling must count
only *failed* attempts, per account and per IP, and must know the moment an account becomes
locked (to notify its owner). Storage: process memory on one machine, Redis when configured, so
several instances share the counters.
"""

from __future__ import annotations

import time
from typing import Any

from flask import current_app
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter


class Throttle:
    """Moving-window counters in ``storage_uri``; with Redis, a per-process memory fallback.

    When Redis is unreachable (``guard``, servicekonto.health.RedisGuard, decides and logs the
    change once) the counters continue in process memory: limits then hold per instance, which
    is weaker but keeps logins working (the documented reduced mode).
    """

    def __init__(self, storage_uri: str, guard: Any = None) -> None:
        self.guard = guard if storage_uri.startswith("redis") else None
        options: dict[str, Any] = {}
        if self.guard is not None:
            options = {"wrap_exceptions": True, "socket_timeout": 1,
                       "socket_connect_timeout": 1}
        self.storage = storage_from_string(storage_uri, **options)
        self.strategy = MovingWindowRateLimiter(self.storage)
        self._memory: MovingWindowRateLimiter | None = None
        if self.guard is not None:
            self._memory = MovingWindowRateLimiter(storage_from_string("memory://"))

    def _run(self, method: str, *args: Any) -> Any:
        if self.guard is None:
            return getattr(self.strategy, method)(*args)
        assert self._memory is not None
        return self.guard.call(lambda: getattr(self.strategy, method)(*args),
                               lambda: getattr(self._memory, method)(*args))

    @staticmethod
    def limit(spec: str) -> RateLimitItem:
        return parse(spec)

    def retry_after(self, spec: str, *identifiers: str) -> int | None:
        """Seconds until another attempt is allowed, or None when not blocked."""
        item = parse(spec)
        if self._run("test", item, *identifiers):
            return None
        reset_at, _remaining = self._run("get_window_stats", item, *identifiers)
        return max(1, int(reset_at - time.time()) + 1)

    def hit(self, spec: str, *identifiers: str) -> bool:
        """Count one attempt; False when this attempt exceeded the limit."""
        return self._run("hit", parse(spec), *identifiers)

    def remaining(self, spec: str, *identifiers: str) -> int:
        return self._run("get_window_stats", parse(spec), *identifiers)[1]

    def clear(self, spec: str, *identifiers: str) -> None:
        self._run("clear", parse(spec), *identifiers)


def get_throttle() -> Throttle:
    return current_app.extensions["servicekonto.throttle"]
