"""Request limits for actions that send mail (registration, reset, resends, e-mail changes).

Limits per IP come from the settings (``registration_rate_limit``, ``reset_rate_limit``); the
per-address and per-account limits below stop mail bombing of one recipient.
"""

from __future__ import annotations

import hashlib

from servicekonto.accounts.services import AccountError
from servicekonto.throttle import get_throttle

#: Reset mails per recipient address (beyond it the request is answered but no mail is sent).
RESET_MAILS_PER_ADDRESS = "5 per hour"
#: Verification resends and e-mail change requests per account.
MAILS_PER_ACCOUNT = "5 per hour"


class RateLimited(AccountError):
    def __init__(self, retry_after: int) -> None:
        super().__init__("too many requests")
        self.retry_after = retry_after


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def allowed(spec: str, scope: str, key: str) -> bool:
    """Count one request; False when it exceeds the limit (then it is not counted)."""
    return get_throttle().hit(spec, scope, key)


def require(spec: str, scope: str, key: str) -> None:
    """Count one request or raise RateLimited with the seconds to wait."""
    throttle = get_throttle()
    if not throttle.hit(spec, scope, key):
        raise RateLimited(throttle.retry_after(spec, scope, key) or 60)
