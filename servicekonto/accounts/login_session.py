"""The authenticated state of a browser session: the contract other packages (oidc/) rely on.

After ``establish()`` the session holds Flask-Login's ``_user_id`` and ``auth``::

    {"time": 1732300000, "acr": LOA_LOW, "amr": ["pwd"], "sid": "<random, public>"}

``sid`` is the session's public identifier (OIDC ``sid`` claim, back-channel logout); it is not
the cookie value and changes with every login.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from blinker import Namespace
from flask import current_app, request, session
from flask_login import login_user, logout_user

from servicekonto.accounts.models import User
from servicekonto.accounts.trust_levels import LOA_LOW

_AUTH_KEYS = ("_user_id", "_fresh", "_id", "auth", "device", "ip")

_signals = Namespace()
#: Sent by ``end()`` before the session is destroyed, with ``user_id`` and ``sid``: the
#: provider listens to notify the portals of that session (back-channel logout).
logged_out = _signals.signal("servicekonto.logged-out")


@dataclass(frozen=True)
class AuthState:
    user_id: int
    auth_time: int
    acr: str
    amr: tuple[str, ...]
    sid: str


def establish(user: User, *, amr: tuple[str, ...] = ("pwd",), acr: str = LOA_LOW,
              audit: Sequence[dict[str, Any]] = ()) -> AuthState:
    """Log ``user`` in: new session id (against fixation), then record how they authenticated.
    ``audit``: entries (``audit.service.entry``) to commit with the new session (the password
    login's success entry: one write at the end of the request, see ``audit_with_write``)."""
    for key in _AUTH_KEYS:
        session.pop(key, None)
    session.rotate()  # type: ignore[attr-defined]
    if audit:
        session.audit_with_write(audit)  # type: ignore[attr-defined]
    login_user(user)
    state = AuthState(user.id, int(time.time()), acr, tuple(amr), secrets.token_urlsafe(16))
    session["auth"] = {"time": state.auth_time, "acr": state.acr, "amr": list(state.amr),
                       "sid": state.sid}
    # Shown in the account console's list of active sessions (coarse, never the raw header).
    session["device"] = device_label(request.headers.get("User-Agent", ""))
    session["ip"] = request.remote_addr
    return state


def step_up(acr: str, amr: str) -> AuthState:
    """The signed-in citizen proved a further factor: same login (``sid`` kept, so portals
    that know it still get back-channel logouts), new session id (fixation), higher ``acr``,
    ``amr`` extended, ``auth_time`` = now (the authentication at this level happened now)."""
    current = current_auth()
    if current is None:
        raise RuntimeError("step_up() needs a signed-in session")
    methods = current.amr if amr in current.amr else (*current.amr, amr)
    state = AuthState(current.user_id, int(time.time()), acr, tuple(methods), current.sid)
    session["auth"] = {"time": state.auth_time, "acr": state.acr, "amr": list(state.amr),
                       "sid": state.sid}
    session.rotate()  # type: ignore[attr-defined]
    return state


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
             ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"),
            ("Windows", "Windows"), ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"),
            ("Linux", "Linux"))


def device_label(user_agent: str) -> str:
    """A coarse device label from a User-Agent header, e.g. "Firefox on Windows"."""
    browser = next((name for key, name in _BROWSERS if key in user_agent), "")
    system = next((name for key, name in _SYSTEMS if key in user_agent), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "unknown"


def current_auth() -> AuthState | None:
    """How the current session authenticated, or None when nobody is logged in."""
    auth = session.get("auth")
    user_id = session.get("_user_id")
    if not auth or user_id is None:
        return None
    return AuthState(int(user_id), int(auth["time"]), auth["acr"], tuple(auth["amr"]),
                     auth["sid"])


def end() -> None:
    """Log out: forget the user and remove the whole session from the store and the browser."""
    state = current_auth()
    if state is not None:
        logged_out.send(current_app._get_current_object(), user_id=state.user_id, sid=state.sid)
    logout_user()
    session.destroy()  # type: ignore[attr-defined]
