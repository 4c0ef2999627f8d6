"""The provider's signing keys: generation, encryption at rest, rotation, retirement, JWKS.

Life cycle (columns of :class:`oidc.models.SigningKey`)::

    created_at ── published in the JWKS
    not_before ── may sign (the newest key of its algorithm past not_before signs)
    retired_at ── stops signing (set by ``retire`` or scheduled by the next ``rotate``)
    unpublish_at ─ leaves the JWKS: retired_at + max(ID token, access token lifetime)

``rotate(alg)`` creates a key that is published ``signing_key_publish_lead_seconds`` before it
signs (relying parties refresh their JWKS caches meanwhile) and schedules the retirement of the
key it replaces for that moment, so the old key stays published until every token it signed has
expired. ``rotate(alg, immediately=True)`` is for emergencies.

Private keys are stored as PKCS#8 DER encrypted with AES-256-GCM under the key-encryption key
(KEK) from the settings (never in the database); the kid is the associated data, so a ciphertext
cannot be moved to another row. A wrong KEK fails with :class:`KeyEncryptionError`.

Performance: :class:`KeyRing` (one per app) keeps the key metadata in memory and re-checks a
cheap fingerprint of the table (id and life-cycle timestamps of every key, no key material) at
most every ``KEYSET_RECHECK_SECONDS``; decrypted private keys are cached by kid for the life of
the process (a kid never changes its key). Time-based transitions (a pending key starting to
sign, a retired key leaving the JWKS) are computed from the cached metadata on every call, so
they need no reload.

Example::

    from oidc.keys import public_jwks, signing_key

    kid, key = signing_key("RS256")          # key: a joserfc key for authlib/joserfc
    jwt.encode({"alg": "RS256", "kid": kid}, claims, key, ["RS256"])
    public_jwks()                            # {"keys": [...]} public parts only
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from flask import Flask, current_app
from joserfc.jwk import ECKey, OKPKey, RSAKey
from sqlalchemy import delete, inspect, select, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from oidc.models import SigningKey, UsedAssertion
from servicekonto.audit.service import record
from servicekonto.audit.tags import AuditTag
from servicekonto.db import utcnow
from servicekonto.encryption import (
    InvalidKeyEncryptionKey,
    SecretDecryptionError,
    decrypt_secret,
    encrypt_secret,
)

log = logging.getLogger(__name__)

#: Algorithms this module can make keys for. ``none`` and HS256 are deliberately absent.
SUPPORTED_ALGS = ("RS256", "PS256", "ES256", "EdDSA")
#: How often (at most) a process re-checks whether another instance changed the key set.
KEYSET_RECHECK_SECONDS = 5.0
#: Format tag of ``private_key_encrypted``: v1.<nonce b64url>.<ciphertext+tag b64url>
#: PostgreSQL advisory lock id serialising first-start key creation across instances.
_ADVISORY_LOCK_ID = 0x5E1C0_0001


class SigningKeyError(Exception):
    """A key operation is not possible (unknown kid, unsupported algorithm, …)."""


class KeyEncryptionError(SigningKeyError):
    """The key-encryption key is malformed or does not decrypt a stored key."""


# -- encryption at rest -----------------------------------------------------------------------

def encrypt_private_key(kek: str, kid: str, plaintext: bytes) -> str:
    """Encrypt ``plaintext`` (PKCS#8 DER) for the row of ``kid`` (servicekonto.encryption)."""
    try:
        return encrypt_secret(kek, kid, plaintext)
    except InvalidKeyEncryptionKey as exc:
        raise KeyEncryptionError(str(exc)) from None


def decrypt_private_key(kek: str, kid: str, stored: str) -> bytes:
    """Inverse of :func:`encrypt_private_key`; a wrong KEK raises KeyEncryptionError."""
    try:
        return decrypt_secret(kek, kid, stored)
    except InvalidKeyEncryptionKey as exc:
        raise KeyEncryptionError(str(exc)) from None
    except SecretDecryptionError:
        raise KeyEncryptionError(
            f"cannot decrypt signing key {kid}: the configured key_encryption_key is not the one "
            "it was encrypted with, or the stored key is malformed (restore the original "
            "SERVICEKONTO_KEY_ENCRYPTION_KEY)") from None


# -- generation -------------------------------------------------------------------------------

def generate_private_key(alg: str, rsa_bits: int) -> Any:
    """A new ``cryptography`` private key for ``alg`` (RSA ``rsa_bits`` / P-256 / Ed25519)."""
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise SigningKeyError(f"unsupported signing algorithm {alg!r} (supported: "
                          f"{', '.join(SUPPORTED_ALGS)})")


def _jose_key(alg: str, der: bytes, kid: str) -> Any:
    """A joserfc key (what authlib 1.9 and joserfc sign with) from PKCS#8 DER."""
    cls = {"RS256": RSAKey, "PS256": RSAKey, "ES256": ECKey, "EdDSA": OKPKey}[alg]
    return cls.import_key(der, parameters={"kid": kid, "alg": alg, "use": "sig"})


def _new_key_row(alg: str, settings: dict[str, Any], not_before: dt.datetime) -> SigningKey:
    private = generate_private_key(alg, settings["rsa_key_bits"])
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    # "<alg>-<RFC 7638 thumbprint>": unique per key and stable; the prefix tells operators the
    # algorithm and keeps a kid from starting with "-" (the CLI would read it as an option).
    kid = f"{alg.lower()}-{_jose_key(alg, der, 'tmp').thumbprint()}"
    public = _jose_key(alg, der, kid).as_dict(private=False)
    return SigningKey(kid=kid, alg=alg, public_jwk=dict(public),
                      private_key_encrypted=encrypt_private_key(
                          settings["key_encryption_key"], kid, der),
                      created_at=utcnow(), not_before=not_before)


# -- the in-process key ring ------------------------------------------------------------------

@dataclass(frozen=True)
class KeyInfo:
    """Metadata of one key (no private part)."""

    kid: str
    alg: str
    public_jwk: dict[str, Any]
    created_at: dt.datetime
    not_before: dt.datetime
    retired_at: dt.datetime | None
    unpublish_at: dt.datetime | None

    def signs_at(self, now: dt.datetime) -> bool:
        return self.not_before <= now and (self.retired_at is None or self.retired_at > now)

    def published_at(self, now: dt.datetime) -> bool:
        return self.created_at <= now and (self.unpublish_at is None or self.unpublish_at > now)

    def state(self, now: dt.datetime) -> str:
        if not self.published_at(now):
            return "unpublished"
        if self.retired_at is not None and self.retired_at <= now:
            return "retired"
        if self.not_before > now:
            return "pending"
        return "active"


def _info(row: SigningKey) -> KeyInfo:
    return KeyInfo(row.kid, row.alg, dict(row.public_jwk), row.created_at, row.not_before,
                   row.retired_at, row.unpublish_at)


class KeyRing:
    """Per-app cache of the key set (see the module docstring)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._infos: list[KeyInfo] | None = None
        self._fingerprint: tuple[Any, ...] | None = None
        self._checked_at = 0.0
        self._private: dict[str, Any] = {}
        self._jwks_cache: tuple[tuple[str, ...], dict[str, Any]] | None = None

    @property
    def settings(self) -> dict[str, Any]:
        return self.app.config["SERVICEKONTO"]

    def _session(self) -> Any:
        return self.app.extensions["servicekonto.db"].independent_session()

    @staticmethod
    def _fingerprint_of(session: Session) -> tuple[Any, ...]:
        """The life-cycle columns of every key: small, and any change by any instance shows."""
        rows = session.execute(select(
            SigningKey.id, SigningKey.not_before, SigningKey.retired_at, SigningKey.unpublish_at,
        ).order_by(SigningKey.id)).all()
        return tuple(tuple(row) for row in rows)

    def invalidate(self) -> None:
        with self._lock:
            self._infos = None
            self._checked_at = 0.0

    def infos(self) -> list[KeyInfo]:
        """All keys' metadata, re-checked against the database at most every few seconds."""
        now = time.monotonic()
        with self._lock:
            if self._infos is not None and now - self._checked_at < KEYSET_RECHECK_SECONDS:
                return self._infos
        with self._session() as session:
            fingerprint = self._fingerprint_of(session)
            with self._lock:
                if self._infos is not None and fingerprint == self._fingerprint:
                    self._checked_at = now
                    return self._infos
            rows = session.scalars(select(SigningKey).order_by(SigningKey.id)).all()
            infos = [_info(row) for row in rows]
        with self._lock:
            self._infos, self._fingerprint, self._checked_at = infos, fingerprint, now
        return infos

    def private_key(self, info: KeyInfo) -> Any:
        cached = self._private.get(info.kid)
        if cached is not None:
            return cached
        with self._session() as session:
            stored = session.scalar(select(SigningKey.private_key_encrypted)
                                    .where(SigningKey.kid == info.kid))
        if stored is None:
            raise SigningKeyError(f"signing key {info.kid} no longer exists")
        der = decrypt_private_key(self.settings["key_encryption_key"], info.kid, stored)
        key = _jose_key(info.alg, der, info.kid)
        self._private[info.kid] = key
        return key

    def current(self, alg: str, now: dt.datetime | None = None) -> KeyInfo | None:
        now = now or utcnow()
        candidates = [i for i in self.infos() if i.alg == alg and i.signs_at(now)]
        if not candidates:
            return None
        return max(candidates, key=lambda i: (i.not_before, i.created_at, i.kid))

    def signing_key(self, alg: str) -> tuple[str, Any]:
        if alg not in self.settings["id_token_signing_algs"]:
            raise SigningKeyError(f"{alg} is not in id_token_signing_algs")
        info = self.current(alg)
        if info is None:
            # First use (or every key of alg retired): create what is missing, then re-read.
            ensure_signing_keys(self.app)
            self.invalidate()  # another request may have created it: re-read, not the cache
            info = self.current(alg)
            if info is None:  # pragma: no cover - ensure_signing_keys just made one
                raise SigningKeyError(f"no signing key for {alg}")
        return info.kid, self.private_key(info)

    def public_jwks(self) -> dict[str, Any]:
        now = utcnow()
        infos = self.infos()
        ready = {i.alg for i in infos if i.signs_at(now)}
        if not set(self.settings["id_token_signing_algs"]) <= ready:
            ensure_signing_keys(self.app)
            self.invalidate()
            infos, now = self.infos(), utcnow()
        published = sorted((i for i in infos if i.published_at(now)),
                           key=lambda i: (i.alg, i.not_before, i.kid))
        kids = tuple(i.kid for i in published)
        cached = self._jwks_cache
        if cached is not None and cached[0] == kids:
            return cached[1]
        keys = []
        for info in published:
            jwk = {k: v for k, v in info.public_jwk.items() if k not in _PRIVATE_MEMBERS}
            jwk.update(kid=info.kid, alg=info.alg, use="sig")
            keys.append(jwk)
        document = {"keys": keys}
        self._jwks_cache = (kids, document)
        return document


#: JWK members that only private keys have (RFC 7518 6.2.2, 6.3.2; RFC 8037).
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def keyring(app: Flask | None = None) -> KeyRing:
    """The KeyRing of ``app`` (default: the current app), created on first use."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    ring = app.extensions.get("oidc.keyring")
    if ring is None:
        ring = app.extensions.setdefault("oidc.keyring", KeyRing(app))
    return ring


# -- public API -------------------------------------------------------------------------------

def signing_key(alg: str = "RS256") -> tuple[str, Any]:
    """``(kid, key)`` of the key that signs ``alg`` now; ``key`` is a joserfc key (what
    Authlib 1.9's ``resolve_client_private_key`` and ``joserfc.jwt.encode`` accept)."""
    return keyring().signing_key(alg)


def public_jwks() -> dict[str, Any]:
    """``{"keys": [...]}``: every published key, public members only, with kid/alg/use."""
    return keyring().public_jwks()


def decode_own_jwt(token: str) -> dict[str, Any]:
    """Claims of a JWT signed by one of our published keys. Expiry is NOT checked: callers
    (id_token_hint) accept expired tokens and check what they need. Raises ValueError."""
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    try:
        keys = KeySet.import_key_set(public_jwks())  # type: ignore[arg-type]
        decoded = jwt.decode(token, keys, algorithms=list(
            current_app.config["SERVICEKONTO"]["id_token_signing_algs"]))
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(f"not a valid token of this provider: {type(exc).__name__}") from None
    return dict(decoded.claims)


def list_keys(app: Flask | None = None) -> list[KeyInfo]:
    """Every key in the database (also unpublished ones), oldest first, read fresh."""
    ring = keyring(app)
    ring.invalidate()
    return ring.infos()


def _lock_key_table(session: Session) -> None:
    """Serialise key creation across processes; must be the transaction's first statement."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
    else:
        # SQLite: any write statement takes the database write lock (waiting busy_timeout);
        # deleting expired replay-protection rows is a useful one.
        session.execute(delete(UsedAssertion).where(UsedAssertion.expires_at < utcnow()))


def _retire_after(settings: dict[str, Any]) -> dt.timedelta:
    return dt.timedelta(seconds=max(settings["id_token_lifetime_seconds"],
                                    settings["access_token_lifetime_seconds"]))


def _check_alg(alg: str, settings: dict[str, Any]) -> None:
    if alg not in SUPPORTED_ALGS:
        raise SigningKeyError(f"unsupported signing algorithm {alg!r} (supported: "
                              f"{', '.join(SUPPORTED_ALGS)})")
    if alg not in settings["id_token_signing_algs"]:
        raise SigningKeyError(f"{alg} is not in id_token_signing_algs "
                              f"({', '.join(settings['id_token_signing_algs'])})")


def ensure_signing_keys(app: Flask, actor: str = "system") -> list[str]:
    """Create a key that can sign now for every alg in ``id_token_signing_algs`` that has none.

    Safe when several instances start at once: creation runs under a database lock (PostgreSQL
    advisory lock, SQLite write lock) and re-reads the keys after taking it. Returns the kids
    created (empty when nothing was missing).
    """
    settings = app.config["SERVICEKONTO"]
    algs = list(dict.fromkeys(settings["id_token_signing_algs"]))
    for alg in algs:
        _check_alg(alg, settings)
    created: list[str] = []
    ring = keyring(app)
    with ring._session() as session, session.begin():
        _lock_key_table(session)
        now = utcnow()
        rows = session.scalars(select(SigningKey)).all()
        for alg in algs:
            if any(_info(r).signs_at(now) for r in rows if r.alg == alg):
                continue
            row = _new_key_row(alg, settings, not_before=now)
            session.add(row)
            session.flush()
            record(session, AuditTag.KEY_CREATED, actor=actor,
                   details={"kid": row.kid, "alg": alg, "reason": "no signing key",
                            "not_before": row.not_before.isoformat()})
            created.append(row.kid)
    if created:
        log.info("created signing keys %s", ", ".join(created))
        ring.invalidate()
    return created


def rotate(alg: str = "RS256", *, immediately: bool = False, actor: str = "cli",
           app: Flask | None = None) -> KeyInfo:
    """Create a new key for ``alg``; it signs after the publish lead time (or at once).

    The keys it replaces are scheduled to retire when it starts signing and leave the JWKS
    when their last token has expired.
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    settings = app.config["SERVICEKONTO"]
    _check_alg(alg, settings)
    ring = keyring(app)
    now = utcnow()
    lead = 0 if immediately else settings["signing_key_publish_lead_seconds"]
    row = _new_key_row(alg, settings, not_before=now + dt.timedelta(seconds=lead))
    with ring._session() as session:
        with session.begin():
            _lock_key_table(session)
            session.add(row)
            session.flush()
            record(session, AuditTag.KEY_CREATED, actor=actor,
                   details={"kid": row.kid, "alg": alg, "reason": "rotation",
                            "immediately": immediately,
                            "not_before": row.not_before.isoformat()})
            older = session.scalars(select(SigningKey).where(
                SigningKey.alg == alg, SigningKey.id != row.id,
                SigningKey.not_before <= row.not_before)).all()
            for old in older:
                if old.retired_at is not None and old.retired_at <= row.not_before:
                    continue
                _set_retired(session, old, row.not_before, settings, actor,
                             reason=f"replaced by {row.kid}")
        info = _info(row)
    ring.invalidate()
    return info


def _set_retired(session: Session, row: SigningKey, when: dt.datetime,
                 settings: dict[str, Any], actor: str, reason: str) -> None:
    row.retired_at = when
    row.unpublish_at = when + _retire_after(settings)
    record(session, AuditTag.KEY_RETIRED, actor=actor,
           details={"kid": row.kid, "alg": row.alg, "reason": reason,
                    "retired_at": when.isoformat(),
                    "unpublish_at": row.unpublish_at.isoformat()})


def retire(kid: str, *, actor: str = "cli", force: bool = False,
           app: Flask | None = None) -> KeyInfo:
    """Stop signing with ``kid`` now; it stays published until its last token expired.

    Refuses (unless ``force``) to leave an algorithm of ``id_token_signing_algs`` without a key
    that can sign: rotate first (``servicekonto keys rotate --alg ALG --now``).
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    settings = app.config["SERVICEKONTO"]
    ring = keyring(app)
    with ring._session() as session:
        with session.begin():
            _lock_key_table(session)
            now = utcnow()
            row = session.scalar(select(SigningKey).where(SigningKey.kid == kid))
            if row is None:
                raise SigningKeyError(f"no signing key with kid {kid}")
            if row.retired_at is not None and row.retired_at <= now:
                raise SigningKeyError(f"signing key {kid} is already retired "
                                      f"(since {row.retired_at.isoformat()})")
            if not force and row.alg in settings["id_token_signing_algs"]:
                others = session.scalars(select(SigningKey).where(
                    SigningKey.alg == row.alg, SigningKey.id != row.id)).all()
                if not any(_info(o).signs_at(now) for o in others):
                    raise SigningKeyError(
                        f"{kid} is the only {row.alg} key that can sign; rotate first "
                        f"(servicekonto keys rotate --alg {row.alg} --now)")
            if row.not_before > now:
                # A pending key is withdrawn: the keys it was to replace keep signing.
                for other in session.scalars(select(SigningKey).where(
                        SigningKey.alg == row.alg, SigningKey.id != row.id,
                        SigningKey.retired_at == row.not_before)).all():
                    other.retired_at = other.unpublish_at = None
            _set_retired(session, row, now, settings, actor, reason="retired")
        info = _info(row)
    ring.invalidate()
    return info


def init_keys(app: Flask, *, eager: bool | None = None) -> None:
    """Register the JWKS endpoint and make sure signing keys exist.

    ``eager`` (default: outside testing) creates missing keys at start; a database that is not
    migrated yet is tolerated (keys are then created on first use, as always in tests).
    """
    from oidc.jwks import bp
    from servicekonto.settings import SettingsError

    settings = app.config["SERVICEKONTO"]
    try:
        for alg in settings["id_token_signing_algs"]:
            _check_alg(alg, settings)
    except SigningKeyError as exc:
        raise SettingsError(f"id_token_signing_algs: {exc}") from None
    if not settings["id_token_signing_algs"]:
        raise SettingsError("id_token_signing_algs must name at least one algorithm (RS256)")
    if "oidc_keys" not in app.blueprints:
        app.register_blueprint(bp)
    keyring(app)
    if eager is None:
        eager = not app.testing
    if not eager:
        return
    engine = app.extensions["servicekonto.db"].engine
    try:
        if not inspect(engine).has_table(SigningKey.__tablename__):
            log.debug("signing keys: database not migrated yet; keys are created on first use")
            return
        ensure_signing_keys(app)
    except (OperationalError, ProgrammingError) as exc:
        log.warning("signing keys not checked at start (%s); created on first use",
                    " ".join(str(exc.orig).split()))
