"""Trust levels (eIDAS levels of assurance) and the session limits each one allows."""

from __future__ import annotations

import datetime as dt
from typing import Any

LOA_LOW = "http://eidas.europa.eu/LoA/low"
LOA_SUBSTANTIAL = "http://eidas.europa.eu/LoA/substantial"
LOA_HIGH = "http://eidas.europa.eu/LoA/high"

#: Ordered weakest first.
LEVELS = (LOA_LOW, LOA_SUBSTANTIAL, LOA_HIGH)

#: (idle, absolute) per level, after the German portal guidelines (product.md).
SESSION_LIMITS = {
    LOA_SUBSTANTIAL: (dt.timedelta(minutes=30), dt.timedelta(hours=2)),
    LOA_HIGH: (dt.timedelta(minutes=5), dt.timedelta(minutes=30)),
}


def rank(acr: str | None) -> int:
    """Position of ``acr`` in LEVELS; -1 for unknown values."""
    return LEVELS.index(acr) if acr in LEVELS else -1


def session_limits(settings: dict[str, Any]):
    """Build the limits function the session interface asks for every save."""
    basic = (dt.timedelta(minutes=settings["session_idle_minutes"]),
             dt.timedelta(hours=settings["session_absolute_hours"]))

    def limits_for(data: dict[str, Any]) -> tuple[dt.timedelta, dt.timedelta]:
        acr = (data.get("auth") or {}).get("acr")
        return SESSION_LIMITS.get(acr, basic)

    return limits_for
