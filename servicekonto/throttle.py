"""Counting attempts with the ``limits`` library (the engine underneath Flask-Limiter).

Used directly rather than through Flask-Limiter's decorators because login throttling must count
only *failed* attempts, per account and per IP, and must know the moment an account becomes
locked (to notify its owner). Storage: process memory on one machine, Redis when configured, so
several instances share the counters.
"""

from __future__ import annotations

import time

from flask import current_app
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter


class Throttle:
    def __init__(self, storage_uri: str) -> None:
        self.storage = storage_from_string(storage_uri)
        self.strategy = MovingWindowRateLimiter(self.storage)

    @staticmethod
    def limit(spec: str) -> RateLimitItem:
        return parse(spec)

    def retry_after(self, spec: str, *identifiers: str) -> int | None:
        """Seconds until another attempt is allowed, or None when not blocked."""
        item = parse(spec)
        if self.strategy.test(item, *identifiers):
            return None
        reset_at, _remaining = self.strategy.get_window_stats(item, *identifiers)
        return max(1, int(reset_at - time.time()) + 1)

    def hit(self, spec: str, *identifiers: str) -> bool:
        """Count one attempt; False when this attempt exceeded the limit."""
        return self.strategy.hit(parse(spec), *identifiers)

    def remaining(self, spec: str, *identifiers: str) -> int:
        return self.strategy.get_window_stats(parse(spec), *identifiers)[1]

    def clear(self, spec: str, *identifiers: str) -> None:
        self.strategy.clear(parse(spec), *identifiers)


def get_throttle() -> Throttle:
    return current_app.extensions["servicekonto.throttle"]
