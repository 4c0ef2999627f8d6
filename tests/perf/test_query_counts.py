"""Hot-path endpoints issue a small, fixed number of database round trips (CI guard).

Counted with a ``before_cursor_execute`` listener on the app's engines while one HTTP request
runs against the live server (the session store, the after-commit audit sealing and the
endpoint itself all use that engine, so everything the request costs is counted). Transaction
control is counted too: a transaction that really reached the database (the driver's
connection was inside one when SQLAlchemy committed or rolled back) adds its BEGIN and its
COMMIT/ROLLBACK, two round trips; an autocommit statement adds none, and neither does a
rollback of a connection that never began a transaction (SQLite begins only before a write).
``pool_pre_ping`` pings are not counted (switched off in production set-ups that want speed).

Each endpoint is held to its own count, so a regression shows at once. The periodic
re-checks of the client cache and the signing key set (at most one small query per interval
per process, never per request) are not part of any request's cost; when one happens to fall
into the measured request it is listed but not counted. On PostgreSQL the ORM sends
several audit entries of one flush as one multi-row INSERT. SQLite (in-process, no network
round trip) executes them one by one; there, consecutive executions of the identical INSERT
statement count as one batch. Audit sealing is not part of the request when batched
(``audit_seal_interval_ms``) and is switched off here so its batches do not land in a
request's count.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import event

from tests.oidc.conftest import Provider, http_get, http_post


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"audit_seal_after_commit": False}


class Counter:
    def __init__(self) -> None:
        self.statements: list[str] = []
        self.lock = threading.Lock()
        #: Per connection: the statements of its current transaction (to tell the periodic
        #: re-checks' own transactions apart).
        self.current: dict[int, list[str]] = {}

    def __call__(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        with self.lock:
            line = " ".join(statement.split())[:160]
            self.statements.append(line)
            self.current.setdefault(id(conn), []).append(line)

    def transaction_end(self, conn: Any, word: str) -> None:
        """A COMMIT or ROLLBACK: two round trips (with its BEGIN) if a transaction is open;
        marked periodic when the transaction held only periodic re-checks."""
        with self.lock:
            inside = self.current.pop(id(conn), [])
            if _in_transaction(conn.connection.dbapi_connection):
                periodic = bool(inside) and all(s.startswith(PERIODIC) for s in inside)
                mark = f" {PERIODIC_MARK}" if periodic else ""
                self.statements.extend([f"BEGIN{mark}", f"{word}{mark}"])

    def commit(self, conn: Any) -> None:
        self.transaction_end(conn, "COMMIT")

    def rollback(self, conn: Any) -> None:
        self.transaction_end(conn, "ROLLBACK")


def _in_transaction(dbapi_connection: Any) -> bool:
    """Whether the driver's connection is inside a database transaction right now."""
    if dbapi_connection is None:
        return False
    info = getattr(dbapi_connection, "info", None)
    status = getattr(info, "transaction_status", None)
    if status is not None:  # psycopg: IDLE (0) is outside a transaction
        return int(status) != 0
    return bool(dbapi_connection.in_transaction)  # sqlite3


@contextmanager
def counting(provider: Provider) -> Iterator[Counter]:
    engines = provider.app.extensions["servicekonto.db"].engines  # the autocommit pool too
    counter = Counter()
    hooks = (("before_cursor_execute", counter), ("commit", counter.commit),
             ("rollback", counter.rollback))
    for engine in engines:
        for name, hook in hooks:
            event.listen(engine, name, hook)
    try:
        yield counter
    finally:
        for engine in engines:
            for name, hook in hooks:
                event.remove(engine, name, hook)


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
def signed_in(provider: Provider) -> dict[str, Any]:
    """A citizen with a session and consent for a confidential ES256 portal; warm caches."""
    email = provider.citizen()
    portal = provider.portal(scope="openid profile email offline_access",
                             grant_types=["authorization_code", "refresh_token"],
                             id_token_signed_response_alg="ES256")
    service = provider.portal("Fachverfahren", scope="fachverfahren.read",
                              grant_types=["client_credentials"])
    browser = provider.browser()
    token, _rp, _landing = provider.login_flow(portal, browser, email,
                                               scope="openid profile email offline_access")
    return {"portal": portal, "service": service, "browser": browser, "token": token}


def _authorize_url(provider: Provider, portal: Any) -> tuple[str, str]:
    verifier, challenge = _pkce()
    query = {"client_id": portal.client_id, "response_type": "code",
             "scope": "openid profile email offline_access",
             "redirect_uri": portal.redirect_uri, "state": secrets.token_urlsafe(8),
             "nonce": secrets.token_urlsafe(8), "code_challenge": challenge,
             "code_challenge_method": "S256"}
    from urllib.parse import urlencode

    return provider.base + "/authorize?" + urlencode(query), verifier


def _code(provider: Provider, signed_in: dict[str, Any]) -> tuple[str, str]:
    url, verifier = _authorize_url(provider, signed_in["portal"])
    response = signed_in["browser"].http.get(url, allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text
    params = parse_qs(urlsplit(response.headers["Location"]).query)
    return params["code"][0], verifier


#: The interval re-checks of oidc.server.ClientCache and oidc.keys (fingerprint queries).
PERIODIC = ("SELECT count(oidc_clients.id) AS count_1, max(oidc_clients.updated_at) AS max_1 "
            "FROM oidc_clients",
            "SELECT oidc_signing_keys.id, oidc_signing_keys.not_before, "
            "oidc_signing_keys.retired_at, oidc_signing_keys.unpublish_at FROM oidc_signing_keys")


#: Transaction control of a transaction that held only periodic re-checks.
PERIODIC_MARK = "(periodic re-check)"


def round_trips(statements: list[str]) -> int:
    """Statements, with a run of identical INSERTs (one ORM flush on SQLite) counted once."""
    count, previous = 0, None
    for statement in statements:
        if statement.startswith(PERIODIC) or statement.endswith(PERIODIC_MARK):
            continue
        if not (statement.startswith("INSERT") and statement == previous):
            count += 1
        previous = statement
    return count


def _assert_within(counter: Counter, what: str, limit: int) -> None:
    """Exactly ``limit`` round trips, transaction control included (docs/performance.md)."""
    listing = "\n".join(counter.statements)
    trips = round_trips(counter.statements)
    assert trips == limit, f"{what}: {trips} round trips (expected {limit}):\n{listing}"


def test_authorize_signed_in_with_consent(provider: Provider, signed_in: dict[str, Any]):
    url, _ = _authorize_url(provider, signed_in["portal"])
    with counting(provider) as counter:
        response = signed_in["browser"].http.get(url, allow_redirects=False, timeout=30)
    assert response.status_code == 302 and "code=" in response.headers["Location"]
    postgres = provider.app.extensions["servicekonto.db"].engine.dialect.name == "postgresql"
    # PostgreSQL: session row, citizen + consent (both autocommit), INSERT code + audit as one
    # autocommit statement (a data-modifying CTE). SQLite: session row, citizen + consent,
    # BEGIN, INSERT code, INSERT audit, COMMIT.
    _assert_within(counter, "authorize", 3 if postgres else 6)


def test_token_authorization_code(provider: Provider, signed_in: dict[str, Any]):
    portal = signed_in["portal"]
    code, verifier = _code(provider, signed_in)
    with counting(provider) as counter:
        response = http_post(provider.base + "/token", auth=(portal.client_id, portal.secret),
                             data={"grant_type": "authorization_code", "code": code,
                                   "redirect_uri": portal.redirect_uri,
                                   "code_verifier": verifier})
    assert response.status_code == 200, response.text
    assert "id_token" in response.json()
    postgres = provider.app.extensions["servicekonto.db"].engine.dialect.name == "postgresql"
    # PostgreSQL: code + citizen + consent (autocommit), then UPDATE code used -> INSERT token
    # -> INSERT audit as one autocommit statement (data-modifying CTEs). SQLite: BEGIN, code +
    # citizen + consent, UPDATE code used, INSERT token, INSERT audit, COMMIT.
    _assert_within(counter, "token (authorization_code)", 2 if postgres else 6)


def test_token_refresh(provider: Provider, signed_in: dict[str, Any]):
    portal = signed_in["portal"]
    with counting(provider) as counter:
        response = http_post(provider.base + "/token", auth=(portal.client_id, portal.secret),
                             data={"grant_type": "refresh_token",
                                   "refresh_token": signed_in["token"]["refresh_token"]})
    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"] != signed_in["token"]["refresh_token"]
    postgres = provider.app.extensions["servicekonto.db"].engine.dialect.name == "postgresql"
    # PostgreSQL: token + citizen + consent (autocommit), then UPDATE rotate -> INSERT token
    # -> INSERT audit as one autocommit statement. SQLite: BEGIN, token + citizen + consent,
    # UPDATE rotate, INSERT token, INSERT audit, COMMIT.
    _assert_within(counter, "token (refresh_token)", 2 if postgres else 6)


def test_token_client_credentials(provider: Provider, signed_in: dict[str, Any]):
    service = signed_in["service"]

    def grant() -> Any:
        return http_post(provider.base + "/token", auth=(service.client_id, service.secret),
                         data={"grant_type": "client_credentials", "scope": "fachverfahren.read"})

    assert grant().status_code == 200  # the service's first request fills the client cache
    with counting(provider) as counter:
        response = grant()
    assert response.status_code == 200, response.text
    postgres = provider.app.extensions["servicekonto.db"].engine.dialect.name == "postgresql"
    # PostgreSQL: token and audit INSERT as one autocommit statement (a data-modifying CTE);
    # SQLite: BEGIN, INSERT token, INSERT audit, COMMIT.
    _assert_within(counter, "token (client_credentials)", 1 if postgres else 4)


def test_userinfo(provider: Provider, signed_in: dict[str, Any]):
    access = signed_in["token"]["access_token"]
    with counting(provider) as counter:
        response = http_get(provider.base + "/userinfo",
                            headers={"Authorization": f"Bearer {access}"})
    assert response.status_code == 200, response.text
    assert response.json()["sub"]
    _assert_within(counter, "userinfo", 2)  # token + citizen + consent, INSERT audit; both
    # autocommit (no BEGIN, no COMMIT)


def test_introspection(provider: Provider, signed_in: dict[str, Any]):
    portal = signed_in["portal"]
    access = signed_in["token"]["access_token"]
    with counting(provider) as counter:
        response = http_post(provider.base + "/oauth/introspect",
                             auth=(portal.client_id, portal.secret), data={"token": access})
    assert response.status_code == 200, response.text
    assert response.json()["active"] is True
    _assert_within(counter, "introspection", 1)  # the token


def test_periodic_rechecks_are_recognised(provider: Provider, signed_in: dict[str, Any]):
    """The exclusion above matches the caches' real fingerprint queries (and nothing else)."""
    from oidc.keys import keyring
    from oidc.server import client_cache

    cache = client_cache(provider.app)
    assert cache is not None
    with counting(provider) as counter, provider.app.app_context():
        cache.clear()
        cache.get(signed_in["portal"].client_id)
        keyring(provider.app).invalidate()
        keyring(provider.app).infos()
    periodic = [s for s in counter.statements if s.startswith(PERIODIC)]
    assert len(periodic) == 2, counter.statements
    # Their own transactions (PostgreSQL: BEGIN, ROLLBACK each) are not counted either.
    marked = [s for s in counter.statements if s.endswith(PERIODIC_MARK)]
    assert len(marked) in (0, 2, 4), counter.statements
    assert round_trips(counter.statements) == len(counter.statements) - 2 - len(marked)


def test_transaction_control_is_counted(provider: Provider):
    """A committed write transaction costs its BEGIN and COMMIT; an autocommit write does not."""
    from sqlalchemy import text

    database = provider.app.extensions["servicekonto.db"]
    with counting(provider) as counter, database.engine.begin() as conn:
        conn.execute(text("UPDATE audit_chain_head SET last_seq = last_seq WHERE id = 1"))
    assert counter.statements[-2:] == ["BEGIN", "COMMIT"]
    assert round_trips(counter.statements) == 3
    with counting(provider) as counter, database.reader.connect() as conn:
        conn.execute(text("UPDATE audit_chain_head SET last_seq = last_seq WHERE id = 1"))
    assert round_trips(counter.statements) == 1, counter.statements
