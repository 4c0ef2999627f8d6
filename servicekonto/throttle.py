"""Counting attempts with the ``limits`` library (the engine underneath Flask-Limiter).

Used directly rather than through Flask-Limiter's decorators because login throttling must count
only *failed* attempts, per account and per IP, and must know the moment an account becomes
locked (to notify its owner). Storage: process memory on one machine, Redis when configured, so
several instances share the counters.
"""

from __future__ import annotations

import hashlib
import time
from functools import lru_cache
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
        return _parse(spec)

    def retry_after(self, spec: str, *identifiers: str) -> int | None:
        """Seconds until another attempt is allowed, or None when not blocked.

        One storage call (one Redis round trip): the window's stats say both whether it is
        full (what the strategy's ``test`` checks: no attempt remaining) and when it resets.
        """
        reset_at, remaining = self._run("get_window_stats", _parse(spec), *identifiers)
        if remaining > 0:
            return None
        return max(1, int(reset_at - time.time()) + 1)

    def hit(self, spec: str, *identifiers: str) -> bool:
        """Count one attempt; False when this attempt exceeded the limit."""
        return self._run("hit", _parse(spec), *identifiers)

    def remaining(self, spec: str, *identifiers: str) -> int:
        return self._run("get_window_stats", _parse(spec), *identifiers)[1]

    def clear(self, spec: str, *identifiers: str) -> None:
        self._run("clear", _parse(spec), *identifiers)


@lru_cache(maxsize=64)
def _parse(spec: str) -> RateLimitItem:
    """Parsed once per spec (the specs come from the settings: a handful of strings)."""
    return parse(spec)


def get_throttle() -> Throttle:
    return current_app.extensions["servicekonto.throttle"]


class FailedLoginThrottle:
    """Failed-login counting for one kind of account (citizens, operators), per account and IP.

    The account key is the SHA-256 of the normalised e-mail address, so unknown addresses are
    throttled exactly like known ones (no enumeration through the lockout). Limits come from
    ``login_account_*`` and ``login_ip_*``; ``scope`` keeps the kinds' counters apart.
    """

    def __init__(self, scope: str) -> None:
        self.account_scope = f"{scope}-account"
        self.ip_scope = f"{scope}-ip"

    @staticmethod
    def normalised(email: str) -> str:
        """The address the account key is made of (normalised; as typed when invalid)."""
        from servicekonto.accounts.emails import InvalidEmail, normalize_email

        try:
            return normalize_email(email)
        except InvalidEmail:
            return (email or "").strip().lower()

    @staticmethod
    def key_of(normalised: str) -> str:
        """The account key of an address already passed through ``normalised``."""
        return hashlib.sha256(normalised.encode()).hexdigest()

    @classmethod
    def account_key(cls, email: str) -> str:
        return cls.key_of(cls.normalised(email))

    @staticmethod
    def _specs() -> tuple[str, str]:
        s = current_app.config["SERVICEKONTO"]
        return (f"{s['login_account_failures']} per {s['login_account_window_minutes']} minutes",
                f"{s['login_ip_failures']} per {s['login_ip_window_minutes']} minutes")

    def blocked_for(self, email: str, ip: str, *, key: str | None = None) -> int | None:
        """Seconds until the account or IP may try again, or None when not blocked.

        ``key``: the account key when the caller has it already (one normalisation per login).
        """
        throttle = get_throttle()
        account_spec, ip_spec = self._specs()
        waits = [w for w in (
            throttle.retry_after(account_spec, self.account_scope,
                                 key or self.account_key(email)),
            throttle.retry_after(ip_spec, self.ip_scope, ip)) if w]
        return max(waits) if waits else None

    def count_failure(self, email: str, ip: str, *,
                      key: str | None = None) -> tuple[bool, int | None]:
        """Count one failure: (this failure locked the account, seconds to wait or None)."""
        throttle = get_throttle()
        account_spec, ip_spec = self._specs()
        key = key or self.account_key(email)
        throttle.hit(ip_spec, self.ip_scope, ip)
        counted = throttle.hit(account_spec, self.account_scope, key)
        wait = self.blocked_for(email, ip, key=key)
        locked_now = counted and throttle.retry_after(
            account_spec, self.account_scope, key) is not None
        return locked_now, wait

    def clear_account(self, email: str, *, key: str | None = None) -> None:
        """A successful login forgets the account's failures (not the IP's)."""
        account_spec, _ = self._specs()
        get_throttle().clear(account_spec, self.account_scope, key or self.account_key(email))
