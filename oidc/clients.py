"""Portal (client) registration and management: the services behind ``servicekonto clients``
and, later, operator self-service (RFC 7591 / OIDC Dynamic Registration error mapping through
:class:`InvalidClientMetadata`).

Rules, with the reason for each:

* Redirect URIs are compared as exact strings: https only (http on loopback hosts only when
  ``allow_loopback_http``), no fragments (RFC 6749 3.1.2), no wildcards, no duplicates.
* ``none`` as auth method makes a public client (no secret, PKCE is enforced by the flows);
  ``private_key_jwt`` needs ``jwks`` or ``jwks_uri`` (exactly one, RFC 7591 2).
* Secrets are 32 random bytes (urlsafe base64), stored as SHA-256 hex, shown once.
* Pairwise subjects need one sector: one redirect host, or a ``sector_identifier_uri`` whose
  JSON array lists every redirect URI (fetched and checked at registration).
* Suspending a client revokes its tokens at once.

Example::

    client, secret = create_client(session, name="Bauantrag Musterstadt",
                                   redirect_uris=["https://bau.musterstadt.de/cb"])
    session.commit()
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from oidc.models import Client, ClientStatus, Token
from oidc.subjects import (
    SectorIdentifierError,
    _is_loopback,
    sector_from,
    validate_sector_identifier,
)
from servicekonto.audit.service import record
from servicekonto.audit.tags import AuditTag
from servicekonto.db import utcnow

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
SUBJECT_TYPES = ("pairwise", "public")
#: RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")
_MAX_URI = 500


class ClientError(Exception):
    """Base of client management errors."""


class InvalidClientMetadata(ClientError):
    """A metadata value is not acceptable. ``field`` is the RFC 7591 member name.

    ``error`` is the RFC 7591 error code: ``invalid_redirect_uri`` for redirect URIs,
    ``invalid_client_metadata`` otherwise.
    """

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description

    @property
    def error(self) -> str:
        return "invalid_redirect_uri" if self.field == "redirect_uris" else \
            "invalid_client_metadata"


class ClientNotFound(ClientError):
    def __init__(self, client_id: str) -> None:
        super().__init__(f"no client with client_id {client_id}")
        self.client_id = client_id


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def _settings() -> dict[str, Any]:
    return current_app.config["SERVICEKONTO"]


# -- validation -------------------------------------------------------------------------------

def validate_uri(field: str, uri: Any, *, allow_loopback_http: bool,
                 allow_query: bool = True) -> str:
    """An absolute https URL (http on loopback when allowed), no fragment, no wildcard."""
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidClientMetadata(field, "must be a non-empty URL")
    if uri != uri.strip() or any(c.isspace() for c in uri):
        raise InvalidClientMetadata(field, f"{uri!r} contains white space")
    if len(uri) > _MAX_URI:
        raise InvalidClientMetadata(field, f"URLs are limited to {_MAX_URI} characters")
    if "*" in uri:
        raise InvalidClientMetadata(field, f"{uri!r}: wildcards are not allowed")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidClientMetadata(field, f"{uri!r} is not a valid URL") from None
    if "#" in uri:
        raise InvalidClientMetadata(field, f"{uri!r}: fragments are not allowed")
    if not parts.hostname:
        raise InvalidClientMetadata(field, f"{uri!r} is not an absolute URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidClientMetadata(field, f"{uri!r}: credentials in URLs are not allowed")
    if not allow_query and parts.query:
        raise InvalidClientMetadata(field, f"{uri!r}: a query is not allowed")
    if parts.scheme == "https":
        return uri
    if parts.scheme == "http" and _is_loopback(parts.hostname):
        if allow_loopback_http:
            return uri
        raise InvalidClientMetadata(field, f"{uri!r}: http is only allowed for loopback hosts "
                                           "in development (allow_loopback_http)")
    raise InvalidClientMetadata(field, f"{uri!r} must use https")


def _uri_list(field: str, values: Iterable[str] | None, *, allow_loopback_http: bool,
              required: bool = False) -> list[str]:
    if values is None:
        values = []
    if isinstance(values, str):
        values = [values]
    result: list[str] = []
    for value in values:
        uri = validate_uri(field, value, allow_loopback_http=allow_loopback_http)
        if uri in result:
            raise InvalidClientMetadata(field, f"{uri!r} is listed twice")
        result.append(uri)
    if required and not result:
        raise InvalidClientMetadata(field, "at least one redirect URI is required")
    return result


def normalize_scope(scope: str | Sequence[str] | None) -> str:
    """Space-separated, de-duplicated scope string; each token per RFC 6749 3.3."""
    if scope is None:
        tokens: list[str] = ["openid"]
    elif isinstance(scope, str):
        tokens = scope.split()
    else:
        tokens = [t for part in scope for t in str(part).split()]
    if not tokens:
        raise InvalidClientMetadata("scope", "at least one scope is required")
    for token in tokens:
        if not _SCOPE_TOKEN.match(token):
            raise InvalidClientMetadata("scope", f"{token!r} is not a valid scope")
    return " ".join(dict.fromkeys(tokens))


def _validate_jwks(jwks: Any) -> dict[str, Any]:
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise InvalidClientMetadata("jwks", 'must be a JWK Set: {"keys": [...]} with a key')
    for key in jwks["keys"]:
        if not isinstance(key, dict) or key.get("kty") not in ("RSA", "EC", "OKP"):
            raise InvalidClientMetadata("jwks", "only RSA, EC and OKP public keys are accepted")
        if any(member in key for member in ("d", "p", "q", "k")):
            raise InvalidClientMetadata("jwks", "contains private key material: register the "
                                                "public keys only")
    try:
        KeySet.import_key_set(jwks)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise InvalidClientMetadata("jwks", f"not a valid JWK Set ({exc})") from None
    kids = [k.get("kid") for k in jwks["keys"]]
    if len(jwks["keys"]) > 1 and (None in kids or len(set(kids)) != len(kids)):
        raise InvalidClientMetadata("jwks", "several keys need distinct kids")
    return jwks


def _one_of(field: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InvalidClientMetadata(field, f"{value!r} is not one of {', '.join(allowed)}")
    return value


# -- services ---------------------------------------------------------------------------------

def create_client(
    session: Session,
    *,
    name: str,
    redirect_uris: Sequence[str] | None = None,
    post_logout_redirect_uris: Sequence[str] | None = None,
    scope: str | Sequence[str] | None = "openid",
    grant_types: Sequence[str] | None = None,
    auth_method: str = "client_secret_basic",
    subject_type: str = "pairwise",
    id_token_signed_response_alg: str = "RS256",  # noqa: S107
    backchannel_logout_uri: str | None = None,
    backchannel_logout_session_required: bool = False,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    sector_identifier_uri: str | None = None,
    operator: str | None = None,
    contacts: Sequence[str] | None = None,
    always_issue_refresh_token: bool = False,
    status: str = ClientStatus.ACTIVE,
    actor: str = "cli",
    settings: dict[str, Any] | None = None,
) -> tuple[Client, str | None]:
    """Validate the metadata and add a client to ``session`` (the caller commits).

    Returns the client and its plain secret (None for public and private_key_jwt clients),
    which is not stored anywhere: show it once. Raises :class:`InvalidClientMetadata`.
    """
    settings = settings or _settings()
    loopback = settings["allow_loopback_http"]

    name = (name or "").strip()
    if not name:
        raise InvalidClientMetadata("client_name", "a name is required")
    if len(name) > 200:
        raise InvalidClientMetadata("client_name", "at most 200 characters")
    auth_method = _one_of("token_endpoint_auth_method", auth_method, AUTH_METHODS)
    subject_type = _one_of("subject_type", subject_type, SUBJECT_TYPES)
    alg = _one_of("id_token_signed_response_alg", id_token_signed_response_alg,
                  list(settings["id_token_signing_algs"]))

    grants = list(dict.fromkeys(grant_types or ["authorization_code"]))
    for grant in grants:
        _one_of("grant_types", grant, GRANT_TYPES)
    if "refresh_token" in grants and "authorization_code" not in grants:
        raise InvalidClientMetadata("grant_types", "refresh_token needs authorization_code")
    if auth_method == "none" and "client_credentials" in grants:
        raise InvalidClientMetadata("grant_types", "public clients cannot use "
                                                   "client_credentials")

    uses_redirects = "authorization_code" in grants
    redirects = _uri_list("redirect_uris", redirect_uris, allow_loopback_http=loopback,
                          required=uses_redirects)
    if redirects and not uses_redirects:
        raise InvalidClientMetadata("redirect_uris", "only for the authorization_code grant")
    logout_redirects = _uri_list("post_logout_redirect_uris", post_logout_redirect_uris,
                                 allow_loopback_http=loopback)
    if backchannel_logout_uri:
        backchannel_logout_uri = validate_uri("backchannel_logout_uri", backchannel_logout_uri,
                                              allow_loopback_http=loopback)
    elif backchannel_logout_session_required:
        raise InvalidClientMetadata("backchannel_logout_session_required",
                                    "needs a backchannel_logout_uri")
    scope_string = normalize_scope(scope)

    if jwks is not None and jwks_uri:
        raise InvalidClientMetadata("jwks", "give jwks or jwks_uri, not both")
    if jwks is not None:
        jwks = _validate_jwks(jwks)
    if jwks_uri:
        jwks_uri = validate_uri("jwks_uri", jwks_uri, allow_loopback_http=loopback)
    if auth_method == "private_key_jwt" and jwks is None and not jwks_uri:
        raise InvalidClientMetadata("jwks", "private_key_jwt needs jwks or jwks_uri")

    if sector_identifier_uri:
        sector_identifier_uri = validate_uri("sector_identifier_uri", sector_identifier_uri,
                                             allow_loopback_http=loopback)
        try:
            validate_sector_identifier(sector_identifier_uri, redirects,
                                       allow_loopback_http=loopback)
        except SectorIdentifierError as exc:
            raise InvalidClientMetadata("sector_identifier_uri", str(exc)) from None

    client_id = secrets.token_urlsafe(24)
    if redirects or sector_identifier_uri:
        try:
            sector = sector_from(redirects, sector_identifier_uri)
        except SectorIdentifierError as exc:
            if subject_type == "pairwise":
                raise InvalidClientMetadata("sector_identifier_uri", str(exc)) from None
            sector = urlsplit(redirects[0]).hostname or client_id
    else:
        sector = f"client:{client_id}"  # no user flows without redirect URIs

    plain_secret = None
    if auth_method in ("client_secret_basic", "client_secret_post"):
        plain_secret = new_secret()

    client = Client(
        client_id=client_id,
        client_secret_hash=hash_secret(plain_secret) if plain_secret else None,
        status=_one_of("status", status, list(ClientStatus)),
        client_name=name,
        client_name_i18n={},
        operator=(operator or None),
        contacts=list(contacts or []),
        redirect_uris=redirects,
        post_logout_redirect_uris=logout_redirects,
        grant_types=grants,
        response_types=["code"] if uses_redirects else [],
        scope=scope_string,
        token_endpoint_auth_method=auth_method,
        jwks=jwks,
        jwks_uri=jwks_uri or None,
        id_token_signed_response_alg=alg,
        subject_type=subject_type,
        sector_identifier_uri=sector_identifier_uri or None,
        sector_identifier=sector,
        backchannel_logout_uri=backchannel_logout_uri or None,
        backchannel_logout_session_required=bool(backchannel_logout_session_required),
        default_acr_values=[],
        always_issue_refresh_token=bool(always_issue_refresh_token),
    )
    session.add(client)
    session.flush()
    record(session, AuditTag.CLIENT_CREATED, actor=actor, client_id=client_id,
           details={"client_name": name, "auth_method": auth_method, "grant_types": grants,
                    "scope": scope_string, "subject_type": subject_type,
                    "redirect_uris": redirects, "status": client.status})
    return client, plain_secret


def get_client(client_id: str, *, session: Session | None = None,
               include_inactive: bool = False) -> Client | None:
    """The client with ``client_id``; only active ones unless ``include_inactive``.

    Usable as Authlib's ``query_client`` (suspended and pending clients do not exist for the
    protocol endpoints).
    """
    if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
        return None
    if session is None:
        from servicekonto.db import db

        session = db.session
    client = session.scalar(select(Client).where(Client.client_id == client_id))
    if client is None or (not include_inactive and client.status != ClientStatus.ACTIVE):
        return None
    return client


def require_client(session: Session, client_id: str) -> Client:
    client = get_client(client_id, session=session, include_inactive=True)
    if client is None:
        raise ClientNotFound(client_id)
    return client


def set_status(session: Session, client: Client, status: str, *, actor: str = "cli") -> int:
    """Change the status; suspending revokes every token of the client at once.

    Returns how many tokens were revoked. The caller commits.
    """
    status = _one_of("status", status, list(ClientStatus))
    previous = client.status
    client.status = status
    revoked = 0
    if status == ClientStatus.SUSPENDED:
        result = session.execute(
            update(Token)
            .where(Token.client_pk == client.id, Token.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False))
        revoked = result.rowcount or 0
        record(session, AuditTag.CLIENT_SUSPENDED, actor=actor, client_id=client.client_id,
               details={"previous_status": previous, "tokens_revoked": revoked})
    else:
        record(session, AuditTag.CLIENT_UPDATED, actor=actor, client_id=client.client_id,
               details={"status": status, "previous_status": previous})
    session.flush()
    return revoked


def rotate_secret(session: Session, client: Client, *, actor: str = "cli") -> str:
    """A new secret for a confidential (secret-based) client; the old one stops working."""
    if client.token_endpoint_auth_method not in ("client_secret_basic", "client_secret_post"):
        raise InvalidClientMetadata("token_endpoint_auth_method",
                                    f"{client.token_endpoint_auth_method} clients have no secret")
    secret = new_secret()
    client.client_secret_hash = hash_secret(secret)
    client.client_secret_expires_at = None
    record(session, AuditTag.CLIENT_SECRET_ROTATED, actor=actor, client_id=client.client_id,
           details={"client_name": client.client_name})
    session.flush()
    return secret


def client_metadata(client: Client) -> dict[str, Any]:
    """The client as registration metadata (RFC 7591 names), without any secret."""
    return {
        "client_id": client.client_id,
        "client_name": client.client_name,
        "status": client.status,
        "operator": client.operator,
        "redirect_uris": list(client.redirect_uris or []),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris or []),
        "grant_types": list(client.grant_types or []),
        "response_types": list(client.response_types or []),
        "scope": client.scope,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "subject_type": client.subject_type,
        "sector_identifier_uri": client.sector_identifier_uri,
        "sector_identifier": client.sector_identifier,
        "jwks_uri": client.jwks_uri,
        "jwks": client.jwks,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "backchannel_logout_session_required": client.backchannel_logout_session_required,
        "always_issue_refresh_token": client.always_issue_refresh_token,
        "client_secret_expires_at": (int(client.client_secret_expires_at.timestamp())
                                     if client.client_secret_expires_at else 0),
        "created_at": client.created_at.isoformat() if client.created_at else None,
    }
