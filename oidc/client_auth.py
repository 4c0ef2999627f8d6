"""Client authentication at the token (and revocation/introspection) endpoints.

Methods: ``client_secret_basic``, ``client_secret_post`` and ``none`` (Authlib's built-ins, with
the secret and status checks of :class:`oidc.models.Client`), and ``private_key_jwt``
(RFC 7523 section 2.2, OIDC Core 9) through :class:`PrivateKeyJWT`:

* keys from the client's registered ``jwks`` (parsed once per content) or its ``jwks_uri``
  (fetched with a timeout and cached for ``client_jwks_cache_seconds``; an unknown ``kid``
  triggers one refetch, at most once per ``FORCED_REFETCH_INTERVAL`` per URI, so random kids
  cannot make us hammer a portal's server);
* only asymmetric algorithms; ``iss`` = ``sub`` = client_id; ``aud`` must name the token
  endpoint URL or the issuer; ``exp`` required and not too far ahead; ``jti`` required and
  single use (primary-key insert into ``oidc_used_assertions``; expired rows are purged).

With ``redis_url`` set, the ``jti`` replay cache is a Redis ``SET NX EX`` and fetched
``jwks_uri`` documents are shared between instances through Redis (:class:`RedisJWKSStore`);
while Redis is unreachable both fall back (the ``oidc_used_assertions`` table, per-process
caching), see servicekonto/health.py.

Usage (in ``init_oidc``, after creating the Flask ``AuthorizationServer``)::

    from oidc.client_auth import TOKEN_ENDPOINT_AUTH_METHODS, register_client_auth

    register_client_auth(server, token_endpoint="oidc.token")
    class MyGrant(AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_ENDPOINT_AUTH_METHODS
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import Flask, current_app, url_for
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from werkzeug.routing import BuildError

from oidc.models import UsedAssertion
from oidc.subjects import SectorIdentifierError, check_fetchable_uri
from servicekonto.db import utcnow

log = logging.getLogger(__name__)

#: Every method a client may register, in the order the token endpoint tries them. ``none``
#: comes last: it matches any request that merely names a client_id.
TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt",
                               "none"]
#: Signature algorithms accepted for client assertions (no HMAC, no ``none``).
ASSERTION_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
                        "ES512", "EdDSA"]
#: An assertion may not claim to be valid for longer than this (keeps the jti table small).
MAX_ASSERTION_LIFETIME_SECONDS = 3600
FORCED_REFETCH_INTERVAL = 5.0
JWKS_FETCH_TIMEOUT = (3.05, 5)
JWKS_MAX_BYTES = 256 * 1024
_PURGE_EVERY_SECONDS = 60.0
_JTI_PREFIX = "sk:jti:"


class JWKSFetchError(Exception):
    pass


def fetch_jwks(uri: str, *, allow_loopback_http: bool) -> dict[str, Any]:
    """GET a JWK Set document (https, small, JSON with a ``keys`` list)."""
    try:
        check_fetchable_uri(uri, allow_loopback_http=allow_loopback_http)
    except SectorIdentifierError as exc:
        raise JWKSFetchError(str(exc)) from None
    try:
        with requests.get(uri, timeout=JWKS_FETCH_TIMEOUT, allow_redirects=False, stream=True,
                          headers={"Accept": "application/jwk-set+json, application/json"}
                          ) as response:
            if response.status_code != 200:
                raise JWKSFetchError(f"jwks_uri answered HTTP {response.status_code}")
            body = response.raw.read(JWKS_MAX_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise JWKSFetchError(f"jwks_uri not reachable: {type(exc).__name__}") from None
    if len(body) > JWKS_MAX_BYTES:
        raise JWKSFetchError("jwks_uri document too large")
    try:
        document = json.loads(body)
    except ValueError:
        raise JWKSFetchError("jwks_uri did not return JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JWKSFetchError("jwks_uri did not return a JWK Set")
    return document


def _import_key_set(document: dict[str, Any]) -> KeySet:
    """Signature keys of a JWK Set; keys that are not for signing or not parseable are skipped
    (one odd key must not lock a portal out)."""
    keys = []
    for entry in document.get("keys", []):
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        public = {k: v for k, v in entry.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
        try:
            keys.append(KeySet.import_key_set({"keys": [public]}).keys[0])
        except (JoseError, ValueError, TypeError, KeyError):
            log.info("skipping an unusable key in a client JWK Set")
    return KeySet(keys)


@dataclass
class _Entry:
    keys: KeySet
    kids: frozenset[str | None]
    fetched_at: float
    forced_at: float = 0.0


class RedisJWKSStore:
    """Fetched ``jwks_uri`` documents shared by every instance (key per URI, TTL = cache time).

    Errors go through the RedisGuard: Redis down means "not shared", never a failed request.
    """

    PREFIX = "sk:client-jwks:"

    def __init__(self, client: Any, guard: Any, ttl_seconds: float) -> None:
        self.redis = client
        self.guard = guard
        self.ttl = ttl_seconds

    def _key(self, uri: str) -> str:
        return self.PREFIX + hashlib.sha256(uri.encode()).hexdigest()

    def get(self, uri: str) -> tuple[dict[str, Any], float] | None:
        """(document, fetched at, wall clock seconds) or None."""
        raw = self.guard.call(lambda: self.redis.get(self._key(uri)), lambda: None)
        if not raw:
            return None
        try:
            entry = json.loads(raw)
            return entry["document"], float(entry["fetched_at"])
        except (ValueError, KeyError, TypeError):
            return None

    def put(self, uri: str, document: dict[str, Any]) -> None:
        value = json.dumps({"document": document, "fetched_at": time.time()})
        self.guard.call(lambda: self.redis.set(self._key(uri), value,
                                               ex=max(1, int(self.ttl))), lambda: None)


class JWKSCache:
    """Parsed client key sets, in process memory, optionally in front of a shared store of the
    fetched *documents* (``shared``: :class:`RedisJWKSStore`), so several instances fetch a
    portal's ``jwks_uri`` once per cache lifetime rather than once each.

    The interface (``keys_for(client)``, ``refresh(client)``, ``clear()``) is all callers use.
    """

    def __init__(self, ttl_seconds: float, *, allow_loopback_http: bool = False,
                 fetch: Any = None, clock: Any = time.monotonic, shared: Any = None) -> None:
        self.ttl = ttl_seconds
        self.shared = shared
        self.allow_loopback_http = allow_loopback_http
        self._fetch = fetch or fetch_jwks
        self._clock = clock
        self._lock = threading.Lock()
        self._remote: dict[str, _Entry] = {}
        self._inline: dict[tuple[str, str], KeySet] = {}

    def clear(self) -> None:
        with self._lock:
            self._remote.clear()
            self._inline.clear()

    def _inline_keys(self, client: Any) -> KeySet:
        digest = hashlib.sha256(json.dumps(client.jwks, sort_keys=True).encode()).hexdigest()
        cache_key = (client.client_id, digest)
        keys = self._inline.get(cache_key)
        if keys is None:
            keys = _import_key_set(client.jwks)
            with self._lock:
                if len(self._inline) > 10_000:
                    self._inline.clear()
                self._inline[cache_key] = keys
        return keys

    def _load(self, uri: str, previous: _Entry | None, forced: bool) -> _Entry:
        now = self._clock()
        if not forced and self.shared is not None:
            found = self.shared.get(uri)
            if found is not None and time.time() - found[1] < self.ttl:
                keys = _import_key_set(found[0])
                entry = _Entry(keys, frozenset(k.kid for k in keys),
                               now - max(0.0, time.time() - found[1]),
                               forced_at=previous.forced_at if previous else 0.0)
                with self._lock:
                    self._remote[uri] = entry
                return entry
        try:
            document = self._fetch(uri, allow_loopback_http=self.allow_loopback_http)
            keys = _import_key_set(document)
        except JWKSFetchError as exc:
            if previous is not None:  # keep serving the last good keys
                log.warning("client jwks_uri %s: %s (using cached keys)", uri, exc)
                return previous
            raise InvalidClientError(description=f"Cannot load the client's keys: {exc}") \
                from None
        entry = _Entry(keys, frozenset(k.kid for k in keys), now,
                       forced_at=now if forced else (previous.forced_at if previous else 0.0))
        with self._lock:
            self._remote[uri] = entry
        if self.shared is not None:
            self.shared.put(uri, document)
        return entry

    def keys_for(self, client: Any) -> KeySet:
        """The client's keys (registered jwks, or jwks_uri within the cache lifetime)."""
        if client.jwks:
            return self._inline_keys(client)
        uri = client.jwks_uri
        if not uri:
            raise InvalidClientError(description="The client has no registered keys.")
        entry = self._remote.get(uri)
        if entry is None or self._clock() - entry.fetched_at >= self.ttl:
            entry = self._load(uri, entry, forced=False)
        return entry.keys

    def refresh(self, client: Any) -> KeySet | None:
        """Refetch a jwks_uri at once (unknown kid); None when not allowed right now."""
        uri = client.jwks_uri
        if client.jwks or not uri:
            return None
        entry = self._remote.get(uri)
        if entry is not None and self._clock() - entry.forced_at < FORCED_REFETCH_INTERVAL:
            return None
        return self._load(uri, entry, forced=True).keys


def jwks_cache(app: Flask | None = None) -> JWKSCache:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    cache = app.extensions.get("oidc.client_jwks_cache")
    if cache is None:
        settings = app.config["SERVICEKONTO"]
        shared = None
        if app.extensions.get("servicekonto.redis") is not None:
            shared = RedisJWKSStore(app.extensions["servicekonto.redis"],
                                    app.extensions["servicekonto.redis_guard"],
                                    settings["client_jwks_cache_seconds"])
        cache = app.extensions.setdefault("oidc.client_jwks_cache", JWKSCache(
            settings["client_jwks_cache_seconds"],
            allow_loopback_http=settings["allow_loopback_http"], shared=shared))
    return cache


class PrivateKeyJWT(JWTBearerClientAssertion):
    """``private_key_jwt`` for Authlib's ``ClientAuthentication`` registry."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, token_endpoint: str = "oidc.token", leeway: int = 30) -> None:  # noqa: S107
        super().__init__(validate_jti=True, leeway=leeway)
        self.token_endpoint = token_endpoint
        self._last_purge = 0.0

    # -- audiences ------------------------------------------------------------------------
    def token_endpoint_url(self) -> str:
        issuer = current_app.config["SERVICEKONTO"]["issuer"]
        try:
            path = url_for(self.token_endpoint)
        except BuildError:
            path = "/token"
        return issuer + path

    def get_audiences(self) -> list[str]:
        issuer = current_app.config["SERVICEKONTO"]["issuer"]
        return [self.token_endpoint_url(), issuer]

    # -- keys -----------------------------------------------------------------------------
    def resolve_client_public_key(self, client: Any) -> Any:
        if client.token_endpoint_auth_method != self.CLIENT_AUTH_METHOD:
            raise InvalidClientError(
                description=f"The client cannot authenticate with method: "
                            f"{self.CLIENT_AUTH_METHOD}")
        cache = jwks_cache()

        def resolve(token: Any) -> Any:
            headers = token.headers()
            kid, alg = headers.get("kid"), headers.get("alg")
            keys = cache.keys_for(client)
            key = _pick(keys, kid, alg)
            if key is None:
                fresh = cache.refresh(client)
                key = _pick(fresh, kid, alg) if fresh is not None else None
            if key is None:
                raise InvalidClientError(description="No client key matches the assertion "
                                                     "(kid).")
            return key

        return resolve

    def process_assertion_claims(self, assertion: Any, resolve_key: Any) -> Any:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except JoseError as exc:
            log.debug("client assertion rejected: %r", exc)
            raise InvalidClientError(description=exc.description or "Invalid assertion.") \
                from None
        except ValueError:
            raise InvalidClientError(description="Invalid assertion.") from None
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: Any) -> None:
        exp = claims.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool) and \
                exp > time.time() + MAX_ASSERTION_LIFETIME_SECONDS:
            raise InvalidClientError(description="The assertion expires too far in the future.")
        if not isinstance(claims.get("jti"), str) or not claims.get("jti"):
            raise InvalidClientError(description="Missing JWT ID.")
        super().verify_claims(claims)

    # -- replay -----------------------------------------------------------------------------
    def validate_jti(self, claims: Any, jti: str) -> bool:
        """Record ``jti`` (per client) until the assertion expires; False if seen before.

        Redis (``SET NX EX``) when configured; the ``oidc_used_assertions`` table otherwise and
        while Redis is down. After an outage the table is still consulted for as long as an
        assertion recorded there could be valid, so a replay across the switch is refused.
        """

        digest = hashlib.sha256(f"{claims['iss']}\x00{jti}".encode()).hexdigest()
        expires = dt.datetime.fromtimestamp(float(claims["exp"]) + self.leeway, dt.UTC)
        client = current_app.extensions.get("servicekonto.redis")
        if client is not None:
            guard = current_app.extensions["servicekonto.redis_guard"]
            ttl = max(1, int(float(claims["exp"]) + self.leeway - time.time()) + 1)
            fresh = guard.call(
                lambda: bool(client.set(_JTI_PREFIX + digest, b"1", nx=True, ex=ttl)),
                lambda: None)
            if fresh is False:
                return False
            if fresh is True and not guard.recently_down(
                    MAX_ASSERTION_LIFETIME_SECONDS + self.leeway):
                return True
        return self._record_in_database(digest, expires)

    def _record_in_database(self, digest: str, expires: dt.datetime) -> bool:
        from servicekonto.db import get_db

        database = get_db()
        with database.independent_session() as session:
            self._maybe_purge(session)
            session.add(UsedAssertion(jti_hash=digest, expires_at=expires))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return False
        return True

    def _maybe_purge(self, session: Any) -> None:
        now = time.monotonic()
        if now - self._last_purge < _PURGE_EVERY_SECONDS:
            return
        self._last_purge = now
        session.execute(delete(UsedAssertion).where(UsedAssertion.expires_at < utcnow()))
        session.commit()


def _pick(keys: KeySet, kid: str | None, alg: str | None) -> Any:
    """The key for ``kid`` (or the only key when the assertion names none)."""
    candidates = [k for k in keys.keys if kid is None or k.kid == kid]
    if alg:
        candidates = [k for k in candidates
                      if k.get("alg") in (None, alg) and _fits(k.key_type, alg)]
    if kid is None and len(candidates) != 1:
        return None
    return candidates[0] if candidates else None


def _fits(key_type: str, alg: str) -> bool:
    if alg.startswith(("RS", "PS")):
        return key_type == "RSA"
    if alg.startswith("ES"):
        return key_type == "EC"
    if alg == "EdDSA":
        return key_type == "OKP"
    return False


def register_client_auth(server: Any, *, token_endpoint: str = "oidc.token",  # noqa: S107
                         ) -> PrivateKeyJWT:
    """Add ``private_key_jwt`` to ``server`` (the three others are Authlib built-ins).

    ``token_endpoint`` is the Flask endpoint name of the token endpoint; the assertion's ``aud``
    must be its URL (issuer + path) or the issuer.
    """
    method = PrivateKeyJWT(token_endpoint=token_endpoint)
    server.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, method)
    return method
