"""Flask session interface backed by a ``SessionStore``.

The cookie carries 32 random bytes; the store is keyed by their SHA-256, so a leaked database
or Redis dump does not yield usable cookies. Sessions expire after an idle and an absolute
limit (per trust level via ``limits_for``); ``rotate()`` gives a new id on login.

Protocol requests (``servicekonto.web.is_protocol_request``: token, userinfo, introspection,
revocation, discovery, JWKS) get a ``StatelessSession``: the cookie is not read, the store is
not touched, nothing is saved and no cookie is set, whatever the request carries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from servicekonto.db import utcnow
from servicekonto.sessions.stores import SessionRecord, SessionStore
from servicekonto.web import protocol_request

log = logging.getLogger(__name__)

TOUCH_INTERVAL = dt.timedelta(seconds=60)

#: (idle, absolute) limits for a session's data; replaced per trust level later.
LimitsFn = Callable[[dict[str, Any]], tuple[dt.timedelta, dt.timedelta]]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ServerSideSession(CallbackDict, SessionMixin):  # type: ignore[type-arg]
    def __init__(self, initial: dict[str, Any] | None = None, record: SessionRecord | None = None,
                 expired: bool = False) -> None:
        def on_update(_self: Any) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.record = record
        self.modified = False
        self.expired = expired  # the previous session ran out (the login page says so)
        self.rotate_requested = False
        self.destroy_requested = False
        self.unavailable = False  # the store could not be read; the request gets a 503
        #: Audit entries that commit with this request's session write (``audit_with_write``).
        self.audit_entries: list[dict[str, Any]] = []

    @property
    def key(self) -> str | None:
        return self.record.key if self.record else None

    def rotate(self) -> None:
        """Issue a new session id at the end of this request (call on login / privilege change)."""
        self.rotate_requested = True
        self.modified = True

    def audit_with_write(self, entries: Any) -> None:
        """Write these audit entries (``servicekonto.audit.service.entry``) with the session at
        the end of the request: the login's success entry and its new session are one atomic
        unit in the database store (PostgreSQL: one statement), so there is no login entry
        without the session it opened and no extra transaction for it. Stores that cannot
        (Redis) get them written just before the session."""
        self.audit_entries.extend(entries)

    def destroy(self) -> None:
        """Remove this session from the store and the browser (logout)."""
        self.clear()
        self.destroy_requested = True


class StatelessSession(ServerSideSession):
    """The session of a protocol request: empty; writes are dropped at the end of the request
    (a portal's machine-to-machine call has no browser session to keep)."""


class ServerSideSessionInterface(SessionInterface):
    def __init__(self, store: SessionStore, limits_for: LimitsFn,
                 audit_writer: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
        self.store = store
        self.limits_for = limits_for
        #: Writes a session's audit entries on their own (stores without ``writes_audit``, or
        #: a request that ends without a session write).
        self.audit_writer = audit_writer

    def _audit_alone(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        if self.audit_writer is None:
            raise RuntimeError("audit entries for the session write, but no audit_writer")
        self.audit_writer(entries)

    def open_session(self, app: Flask, request: Request) -> ServerSideSession:
        if protocol_request(app, request):
            return StatelessSession()
        token = request.cookies.get(self.get_cookie_name(app))
        if not token or len(token) > 128:
            return ServerSideSession()
        try:
            record = self.store.load(hash_token(token))
        except Exception:  # noqa: BLE001 - store down: answer 503 (see create_app), don't crash
            log.exception("session store unavailable")
            unavailable = ServerSideSession()
            unavailable.unavailable = True
            return unavailable
        if record is None:
            return ServerSideSession()
        if record.is_expired(utcnow()):
            self.store.delete(record.key)
            return ServerSideSession(expired=True)
        return ServerSideSession(record.data, record=record)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSideSession)
        audit, session.audit_entries = session.audit_entries, []
        if isinstance(session, StatelessSession) or session.unavailable:
            self._audit_alone(audit)
            return
        name = self.get_cookie_name(app)
        cookie_args = {
            "domain": self.get_cookie_domain(app),
            "path": self.get_cookie_path(app),
            "secure": self.get_cookie_secure(app),
            "httponly": True,
            "samesite": self.get_cookie_samesite(app),
        }
        record = session.record
        now = utcnow()
        if audit and not self.store.writes_audit:
            self._audit_alone(audit)  # first: a failure here leaves no session without it
            audit = []

        if session.destroy_requested or (not session and session.modified):
            if record is not None:
                self.store.delete(record.key)
            response.delete_cookie(name, **cookie_args)
            self._audit_alone(audit)
            return
        if not session:
            self._audit_alone(audit)
            return  # nothing worth storing; do not set a cookie

        new_token = None
        replaced = None
        if record is None or session.rotate_requested:
            if record is not None:
                replaced = record.key  # removed together with the new row's write below
            new_token = secrets.token_urlsafe(32)
            idle, absolute = self.limits_for(dict(session))
            record = SessionRecord(
                key=hash_token(new_token), data={}, created_at=now, last_seen_at=now,
                expires_at=now + absolute, idle_seconds=int(idle.total_seconds()),
            )
            session.record = record

        if session.modified or new_token:
            idle, absolute = self.limits_for(dict(session))
            record.data = dict(session)
            record.user_id = _user_id(session)
            record.last_seen_at = now
            record.idle_seconds = int(idle.total_seconds())
            record.expires_at = min(record.expires_at, record.created_at + absolute)
            carried: dict[str, Any] = {"audit": audit} if audit else {}
            if replaced is not None:
                self.store.replace(replaced, record, **carried)
            else:
                self.store.save(record, **carried)
        else:
            self._audit_alone(audit)
            if now - record.last_seen_at >= TOUCH_INTERVAL:
                record.last_seen_at = now
                self.store.touch(record)
        response.vary.add("Cookie")

        if new_token:
            response.set_cookie(name, new_token, **cookie_args)


def _user_id(session: ServerSideSession) -> int | None:
    raw = session.get("_user_id")
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
