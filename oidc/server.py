"""The Authlib authorization server and the few provider-wide helpers the endpoints share.

``build_server(app)`` creates the Flask ``AuthorizationServer`` used by the token endpoint
(grant dispatch, client authentication, OAuth error bodies). The authorization endpoint is our
own pipeline (oidc/authorize.py) because it needs server-side pending requests, prompt handling,
form_post and RFC 9207 ``iss``, which Authlib's grant flow does not model.

Helpers: ``issuer()``, ``get_client(client_id)`` (active or not; callers check status),
``subject_for(client, user_id)`` and ``reachable_acr_values()``.

Client rows are cached per process (``ClientCache``): the protocol endpoints read them on every
request and they change rarely. Invalidation: any INSERT/UPDATE/DELETE on ``oidc_clients``
through this process's engine clears the cache at once; changes made by other instances are
noticed by a fingerprint (``count(*)``, ``max(updated_at)``) re-read at most every
``client_cache_seconds`` (0 disables the cache). Cached rows are detached, read-only snapshots.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from flask import Flask, current_app
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from oidc.models import Client, ClientStatus
from servicekonto.accounts.trust_levels import LOA_LOW, LOA_SUBSTANTIAL
from servicekonto.settings import current_settings

SERVER_KEY = "servicekonto.oidc_server"
CLIENT_CACHE_KEY = "servicekonto.oidc_client_cache"


def issuer() -> str:
    return current_settings()["issuer"].rstrip("/")


def reachable_acr_values() -> list[str]:
    """Levels a citizen can reach here (advertised in discovery): basic (verified e-mail and
    password) and substantial (plus a second factor, servicekonto.mfa). High needs an identity
    provider asserting it (an eID service); none is configured, so it is never reachable."""
    return [LOA_LOW, LOA_SUBSTANTIAL]


class ClientCache:
    """Detached Client rows by client_id (see the module docstring for invalidation)."""

    def __init__(self, engine: Engine, recheck_seconds: float) -> None:
        self.engine = engine
        self.recheck_seconds = recheck_seconds
        self._rows: dict[str, Client] = {}
        self._fingerprint: tuple[Any, ...] | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._on_statement)

    def _on_statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "oidc_clients" in statement and statement.lstrip()[:6].upper() != "SELECT":
            self.clear()

    def clear(self) -> None:
        with self._lock:
            self._rows = {}
            self._fingerprint = None
            self._checked_at = 0.0

    def _recheck(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < self.recheck_seconds:
            return
        with self.engine.connect() as conn:
            found = tuple(conn.execute(
                select(func.count(Client.id), func.max(Client.updated_at))).one())
        with self._lock:
            if found != self._fingerprint:
                self._rows = {}
                self._fingerprint = found
            self._checked_at = now

    def get(self, client_id: str) -> Client | None:
        if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
            return None
        self._recheck()
        row = self._rows.get(client_id)
        if row is not None:
            return row
        return self._load(Client.client_id == client_id)

    def get_by_pk(self, pk: int) -> Client | None:
        self._recheck()
        row = self._rows.get(pk)  # type: ignore[call-overload]
        if row is not None:
            return row
        return self._load(Client.id == pk)

    def _load(self, where: Any) -> Client | None:
        generation = self._rows
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.scalar(select(Client).where(where))
            if row is None:
                return None  # misses are not cached (a new client works at once)
            session.expunge(row)
        with self._lock:
            if self._rows is generation:  # not invalidated while we read
                self._rows[row.client_id] = row
                self._rows[row.id] = row  # type: ignore[index]
        return row


def client_cache(app: Flask | None = None) -> ClientCache | None:
    return (app or current_app).extensions.get(CLIENT_CACHE_KEY)


def client_by_pk(pk: int) -> Client | None:
    """The client row with primary key ``pk`` (any status), from the cache when enabled."""
    cache = client_cache()
    if cache is not None:
        return cache.get_by_pk(pk)
    from servicekonto.db import db

    return db.session.get(Client, pk)


def get_client(client_id: str) -> Client | None:
    """The client row for ``client_id`` (any status; callers check it), or None.

    From the per-process cache when enabled: a detached row, never modify it (manage clients
    through oidc.clients with a session).
    """
    cache = client_cache()
    if cache is not None:
        return cache.get(client_id)
    from oidc.clients import get_client as _get

    return _get(client_id, include_inactive=True)


def subject_for(client: Client, user_id: int) -> str:
    """The ``sub`` this client sees for the citizen (pairwise per sector, or public)."""
    from oidc.subjects import subject_for as _subject

    return _subject(client, user_id)


def _query_client(client_id: str) -> Client | None:
    client = get_client(client_id)
    if client is None or client.status != ClientStatus.ACTIVE:
        return None
    return client


def _save_token(token: dict[str, Any], request: Any) -> None:
    """Tokens are stored by the grants themselves (oidc/grants.py)."""


def build_server(app: Flask) -> AuthorizationServer:
    from oidc import grants

    seconds = float(app.config["SERVICEKONTO"].get("client_cache_seconds", 0) or 0)
    if seconds > 0:
        engine = app.extensions["servicekonto.db"].engine
        app.extensions[CLIENT_CACHE_KEY] = ClientCache(engine, seconds)
    server = AuthorizationServer(app, query_client=_query_client, save_token=_save_token)
    server.register_grant(grants.AuthorizationCodeGrant)
    server.register_grant(grants.RefreshTokenGrant)
    server.register_grant(grants.ClientCredentialsGrant)
    app.extensions[SERVER_KEY] = server
    return server


def get_server() -> AuthorizationServer:
    return current_app.extensions[SERVER_KEY]
