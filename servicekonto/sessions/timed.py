"""Short-lived state in the browser session: a half-finished login waiting for its second step.

Both the citizens' second-factor step (``servicekonto.mfa.factors``) and the operators' TOTP
step (``servicekonto.portals.auth``) keep a dict with the ``time`` it was stored under a session
key; ``timed_state`` gives it back while it is fresh and forgets it once it is not.
"""

from __future__ import annotations

import time
from typing import Any

from flask import session


def timed_state(key: str, max_age_seconds: int) -> dict[str, Any] | None:
    """The dict stored under ``key`` if it is younger than ``max_age_seconds``, else None
    (an expired one is removed from the session)."""
    state = session.get(key)
    if not isinstance(state, dict):
        return None
    if time.time() - int(state.get("time", 0)) > max_age_seconds:
        session.pop(key, None)
        return None
    return state
