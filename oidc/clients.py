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
* Suspending a client revokes its tokens at once; deleting it revokes them and removes the row
  (codes, tokens, consents cascade; the audit log keeps the record).
* Self-registration (oidc/registration.py, RFC 7591/7592) uses the same validation, plus a
  fetch of ``jwks_uri`` (``check_jwks_uri``); ``update_client`` is a full replacement that may
  not widen the scope, change the subject type or move an approved pairwise portal's sector.
* ``allowed_claims`` is set by administrators only (None = every claim of the scopes).

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
from sqlalchemy import delete, select, update
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
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
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


def new_client_id() -> str:
    """32 urlsafe characters; never starting with ``-`` (it would read as a CLI option)."""
    while True:
        client_id = secrets.token_urlsafe(24)
        if client_id[0] != "-":
            return client_id


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

#: Registration metadata this provider understands but does not offer: refused with a clear
#: description instead of being ignored (a portal relying on them would break silently).
UNSUPPORTED_METADATA = {
    "userinfo_signed_response_alg": "userinfo responses are plain JSON (not signed)",
    "userinfo_encrypted_response_alg": "userinfo responses are not encrypted",
    "userinfo_encrypted_response_enc": "userinfo responses are not encrypted",
    "id_token_encrypted_response_alg": "ID tokens are signed, not encrypted",
    "id_token_encrypted_response_enc": "ID tokens are signed, not encrypted",
    "request_object_signing_alg": "request objects are not supported",
    "request_object_encryption_alg": "request objects are not supported",
    "request_object_encryption_enc": "request objects are not supported",
    "request_uris": "request_uri is not supported",
    "frontchannel_logout_uri": "front-channel logout is not offered; use "
                               "backchannel_logout_uri",
    "authorization_signed_response_alg": "JARM is not supported",
}
RESPONSE_TYPES = ("code",)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}$")
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
MAX_CONTACTS = 10
MAX_DEFAULT_MAX_AGE = 365 * 24 * 3600


def _text(field: str, value: Any, limit: int = 200) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidClientMetadata(field, "must be a non-empty string")
    value = value.strip()
    if len(value) > limit:
        raise InvalidClientMetadata(field, f"at most {limit} characters")
    if any(ord(c) < 32 for c in value):
        raise InvalidClientMetadata(field, "must not contain control characters")
    return value


def _string_list(field: str, values: Any) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str) or not isinstance(values, list | tuple):
        raise InvalidClientMetadata(field, "must be a JSON array of strings")
    if not all(isinstance(v, str) for v in values):
        raise InvalidClientMetadata(field, "must be a JSON array of strings")
    return list(values)


def _names_i18n(values: Any) -> dict[str, str]:
    """``client_name#de`` style names (OIDC Registration 2.1): {"de": ..., "en": ...}."""
    if not values:
        return {}
    if not isinstance(values, dict):
        raise InvalidClientMetadata("client_name", "localized names must be an object")
    out: dict[str, str] = {}
    for tag, name in values.items():
        if not isinstance(tag, str) or not _LANGUAGE_TAG.match(tag):
            raise InvalidClientMetadata("client_name", f"{tag!r} is not a language tag")
        out[tag.lower()] = _text(f"client_name#{tag}", name)
    return out


def _contacts(values: Any) -> list[str]:
    contacts = _string_list("contacts", values)
    if len(contacts) > MAX_CONTACTS:
        raise InvalidClientMetadata("contacts", f"at most {MAX_CONTACTS} contacts")
    for contact in contacts:
        if not _EMAIL.match(contact):
            raise InvalidClientMetadata("contacts", f"{contact!r} is not an e-mail address")
    return list(dict.fromkeys(contacts))


def _acr_values(values: Any) -> list[str]:
    from servicekonto.accounts.trust_levels import LEVELS

    acrs = _string_list("default_acr_values", values)
    for acr in acrs:
        if acr not in LEVELS:
            raise InvalidClientMetadata("default_acr_values",
                                        f"{acr!r} is not one of {', '.join(LEVELS)}")
    return list(dict.fromkeys(acrs))


def _max_age(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not \
            0 <= value <= MAX_DEFAULT_MAX_AGE:
        raise InvalidClientMetadata("default_max_age", "must be a number of seconds "
                                                       f"(0 to {MAX_DEFAULT_MAX_AGE})")
    return value


def _flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidClientMetadata(field, "must be true or false")
    return value


def _allowed_claims(values: Any) -> list[str] | None:
    if values is None:
        return None
    from oidc.claims import USER_CLAIMS

    claims = _string_list("allowed_claims", values)
    unknown = [c for c in claims if c not in USER_CLAIMS]
    if unknown:
        raise InvalidClientMetadata("allowed_claims", f"unknown claims: {', '.join(unknown)}")
    return sorted(set(claims))


def check_jwks_uri(uri: str, *, allow_loopback_http: bool) -> None:
    """The ``jwks_uri`` answers with a JWK Set holding at least one usable signing key."""
    from oidc.client_auth import JWKSFetchError, _import_key_set, fetch_jwks

    try:
        document = fetch_jwks(uri, allow_loopback_http=allow_loopback_http)
    except JWKSFetchError as exc:
        raise InvalidClientMetadata("jwks_uri", str(exc)) from None
    if not _import_key_set(document).keys:
        raise InvalidClientMetadata("jwks_uri", "the JWK Set holds no usable public "
                                                "signing key")


def _validated(
    settings: dict[str, Any],
    client_id: str,
    *,
    name: str,
    redirect_uris: Sequence[str] | None,
    post_logout_redirect_uris: Sequence[str] | None,
    scope: str | Sequence[str] | None,
    grant_types: Sequence[str] | None,
    response_types: Sequence[str] | None,
    auth_method: str,
    subject_type: str,
    id_token_signed_response_alg: str,
    userinfo_signed_response_alg: str | None,
    backchannel_logout_uri: str | None,
    backchannel_logout_session_required: bool,
    jwks: dict[str, Any] | None,
    jwks_uri: str | None,
    sector_identifier_uri: str | None,
    contacts: Sequence[str] | None,
    client_name_i18n: dict[str, str] | None,
    logo_uri: str | None,
    policy_uri: str | None,
    tos_uri: str | None,
    default_acr_values: Sequence[str] | None,
    default_max_age: int | None,
    require_auth_time: bool,
    allowed_claims: Sequence[str] | None,
    check_jwks: bool,
) -> dict[str, Any]:
    """Check every metadata value; return the column values (no id, secret or status)."""
    loopback = settings["allow_loopback_http"]

    name = (name or "").strip() if isinstance(name, str) else name
    if not name or not isinstance(name, str):
        raise InvalidClientMetadata("client_name", "a name is required")
    name = _text("client_name", name)
    names_i18n = _names_i18n(client_name_i18n)
    auth_method = _one_of("token_endpoint_auth_method", auth_method, AUTH_METHODS)
    subject_type = _one_of("subject_type", subject_type, SUBJECT_TYPES)
    alg = _one_of("id_token_signed_response_alg", id_token_signed_response_alg,
                  list(settings["id_token_signing_algs"]))
    if userinfo_signed_response_alg is not None:
        raise InvalidClientMetadata("userinfo_signed_response_alg",
                                    UNSUPPORTED_METADATA["userinfo_signed_response_alg"])

    if grant_types is not None and (isinstance(grant_types, str)
                                    or not isinstance(grant_types, list | tuple)):
        raise InvalidClientMetadata("grant_types", "must be a JSON array of strings")
    grants = list(dict.fromkeys(grant_types or ["authorization_code"]))
    for grant in grants:
        _one_of("grant_types", grant, GRANT_TYPES)
    if "refresh_token" in grants and "authorization_code" not in grants:
        raise InvalidClientMetadata("grant_types", "refresh_token needs authorization_code")
    if auth_method == "none" and "client_credentials" in grants:
        raise InvalidClientMetadata("grant_types", "public clients cannot use "
                                                   "client_credentials")
    uses_redirects = "authorization_code" in grants
    if response_types is None:
        responses = ["code"] if uses_redirects else []
    else:
        responses = list(dict.fromkeys(_string_list("response_types", response_types)))
        for response_type in responses:
            _one_of("response_types", response_type, RESPONSE_TYPES)
        if uses_redirects and "code" not in responses:
            raise InvalidClientMetadata("response_types", "the authorization_code grant "
                                                          "needs response_type code")
        if responses and not uses_redirects:
            raise InvalidClientMetadata("response_types", "response_type code needs the "
                                                          "authorization_code grant")

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
    uris = {}
    for field_name, value in (("logo_uri", logo_uri), ("policy_uri", policy_uri),
                              ("tos_uri", tos_uri)):
        uris[field_name] = validate_uri(field_name, value, allow_loopback_http=loopback) \
            if value else None

    if jwks is not None and jwks_uri:
        raise InvalidClientMetadata("jwks", "give jwks or jwks_uri, not both")
    if jwks is not None:
        jwks = _validate_jwks(jwks)
    if jwks_uri:
        jwks_uri = validate_uri("jwks_uri", jwks_uri, allow_loopback_http=loopback)
        if check_jwks:
            check_jwks_uri(jwks_uri, allow_loopback_http=loopback)
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

    if redirects or sector_identifier_uri:
        try:
            sector = sector_from(redirects, sector_identifier_uri)
        except SectorIdentifierError as exc:
            if subject_type == "pairwise":
                raise InvalidClientMetadata("sector_identifier_uri", str(exc)) from None
            sector = urlsplit(redirects[0]).hostname or client_id
    else:
        sector = f"client:{client_id}"  # no user flows without redirect URIs

    return {
        "client_name": name,
        "client_name_i18n": names_i18n,
        "contacts": _contacts(list(contacts) if isinstance(contacts, tuple) else contacts),
        "redirect_uris": redirects,
        "post_logout_redirect_uris": logout_redirects,
        "grant_types": grants,
        "response_types": responses,
        "scope": scope_string,
        "token_endpoint_auth_method": auth_method,
        "jwks": jwks,
        "jwks_uri": jwks_uri or None,
        "id_token_signed_response_alg": alg,
        "userinfo_signed_response_alg": None,
        "subject_type": subject_type,
        "sector_identifier_uri": sector_identifier_uri or None,
        "sector_identifier": sector,
        "backchannel_logout_uri": backchannel_logout_uri or None,
        "backchannel_logout_session_required": _flag(
            "backchannel_logout_session_required",
            False if backchannel_logout_session_required is None
            else backchannel_logout_session_required),
        "default_acr_values": _acr_values(
            list(default_acr_values) if isinstance(default_acr_values, tuple)
            else default_acr_values),
        "default_max_age": _max_age(default_max_age),
        "require_auth_time": _flag("require_auth_time",
                                   False if require_auth_time is None else require_auth_time),
        "allowed_claims": _allowed_claims(allowed_claims),
        **uris,
    }


def create_client(
    session: Session,
    *,
    name: str,
    redirect_uris: Sequence[str] | None = None,
    post_logout_redirect_uris: Sequence[str] | None = None,
    scope: str | Sequence[str] | None = "openid",
    grant_types: Sequence[str] | None = None,
    response_types: Sequence[str] | None = None,
    auth_method: str = "client_secret_basic",
    subject_type: str = "pairwise",
    id_token_signed_response_alg: str = "RS256",  # noqa: S107
    userinfo_signed_response_alg: str | None = None,
    backchannel_logout_uri: str | None = None,
    backchannel_logout_session_required: bool = False,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    sector_identifier_uri: str | None = None,
    operator: str | None = None,
    contacts: Sequence[str] | None = None,
    client_name_i18n: dict[str, str] | None = None,
    logo_uri: str | None = None,
    policy_uri: str | None = None,
    tos_uri: str | None = None,
    default_acr_values: Sequence[str] | None = None,
    default_max_age: int | None = None,
    require_auth_time: bool = False,
    allowed_claims: Sequence[str] | None = None,
    always_issue_refresh_token: bool = False,
    status: str = ClientStatus.ACTIVE,
    organisation_id: int | None = None,
    registered_via: str = "cli",
    initial_access_token_id: int | None = None,
    registration_access_token_hash: str | None = None,
    check_jwks_uri: bool = False,
    actor: str = "cli",
    settings: dict[str, Any] | None = None,
) -> tuple[Client, str | None]:
    """Validate the metadata and add a client to ``session`` (the caller commits).

    Returns the client and its plain secret (None for public and private_key_jwt clients),
    which is not stored anywhere: show it once. Raises :class:`InvalidClientMetadata`.
    ``check_jwks_uri`` fetches a ``jwks_uri`` now (self-registration: a URI that does not
    answer is refused). Audited as ``client:client:created`` (CLI) or
    ``client:client:registered`` (API and self-service).
    """
    settings = settings or _settings()
    client_id = new_client_id()
    values = _validated(
        settings, client_id, name=name, redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout_redirect_uris, scope=scope,
        grant_types=grant_types, response_types=response_types, auth_method=auth_method,
        subject_type=subject_type, id_token_signed_response_alg=id_token_signed_response_alg,
        userinfo_signed_response_alg=userinfo_signed_response_alg,
        backchannel_logout_uri=backchannel_logout_uri,
        backchannel_logout_session_required=backchannel_logout_session_required, jwks=jwks,
        jwks_uri=jwks_uri, sector_identifier_uri=sector_identifier_uri, contacts=contacts,
        client_name_i18n=client_name_i18n, logo_uri=logo_uri, policy_uri=policy_uri,
        tos_uri=tos_uri, default_acr_values=default_acr_values,
        default_max_age=default_max_age, require_auth_time=require_auth_time,
        allowed_claims=allowed_claims, check_jwks=check_jwks_uri)
    status = _one_of("status", status, list(ClientStatus))
    registered_via = _one_of("registered_via", registered_via, ["cli", "api", "portal"])

    plain_secret = None
    if values["token_endpoint_auth_method"] in SECRET_METHODS:
        plain_secret = new_secret()

    client = Client(
        client_id=client_id,
        client_secret_hash=hash_secret(plain_secret) if plain_secret else None,
        status=status,
        operator=(operator or None),
        always_issue_refresh_token=bool(always_issue_refresh_token),
        organisation_id=organisation_id,
        registered_via=registered_via,
        initial_access_token_id=initial_access_token_id,
        registration_access_token_hash=registration_access_token_hash,
        **values,
    )
    session.add(client)
    session.flush()
    tag = AuditTag.CLIENT_CREATED if registered_via == "cli" else AuditTag.CLIENT_REGISTERED
    record(session, tag, actor=actor, client_id=client_id,
           details={"client_name": values["client_name"],
                    "auth_method": values["token_endpoint_auth_method"],
                    "grant_types": values["grant_types"], "scope": values["scope"],
                    "subject_type": values["subject_type"],
                    "redirect_uris": values["redirect_uris"], "status": client.status,
                    "registered_via": registered_via, "organisation_id": organisation_id,
                    "initial_access_token_id": initial_access_token_id})
    return client, plain_secret


#: Column names an RFC 7592 update replaces (everything a portal may change about itself).
_UPDATABLE = ("client_name", "client_name_i18n", "contacts", "redirect_uris",
              "post_logout_redirect_uris", "grant_types", "response_types", "scope",
              "token_endpoint_auth_method", "jwks", "jwks_uri", "id_token_signed_response_alg",
              "userinfo_signed_response_alg", "subject_type", "sector_identifier_uri",
              "sector_identifier", "backchannel_logout_uri",
              "backchannel_logout_session_required", "default_acr_values", "default_max_age",
              "require_auth_time", "logo_uri", "policy_uri", "tos_uri")


def update_client(
    session: Session,
    client: Client,
    *,
    name: str,
    redirect_uris: Sequence[str] | None = None,
    post_logout_redirect_uris: Sequence[str] | None = None,
    scope: str | Sequence[str] | None = None,
    grant_types: Sequence[str] | None = None,
    response_types: Sequence[str] | None = None,
    auth_method: str = "client_secret_basic",
    subject_type: str = "pairwise",
    id_token_signed_response_alg: str = "RS256",  # noqa: S107
    userinfo_signed_response_alg: str | None = None,
    backchannel_logout_uri: str | None = None,
    backchannel_logout_session_required: bool = False,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    sector_identifier_uri: str | None = None,
    contacts: Sequence[str] | None = None,
    client_name_i18n: dict[str, str] | None = None,
    logo_uri: str | None = None,
    policy_uri: str | None = None,
    tos_uri: str | None = None,
    default_acr_values: Sequence[str] | None = None,
    default_max_age: int | None = None,
    require_auth_time: bool = False,
    check_jwks_uri: bool = False,
    actor: str = "cli",
    settings: dict[str, Any] | None = None,
) -> str | None:
    """Replace the client's metadata (RFC 7592 2.2: omitted members get their defaults).

    ``scope`` None keeps the current scope; a scope may only shrink here (widening it is an
    administrator's decision). The subject type and, for pairwise clients past approval, the
    sector cannot change: every citizen's ``sub`` at the portal would change. Returns a new
    plain secret when the change needs one (a switch to a secret-based auth method), else
    None.
    ``allowed_claims``, status and organisation are not touched. The caller commits.
    """
    settings = settings or _settings()
    values = _validated(
        settings, client.client_id, name=name, redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout_redirect_uris,
        scope=client.scope if scope is None else scope,
        grant_types=grant_types, response_types=response_types, auth_method=auth_method,
        subject_type=subject_type, id_token_signed_response_alg=id_token_signed_response_alg,
        userinfo_signed_response_alg=userinfo_signed_response_alg,
        backchannel_logout_uri=backchannel_logout_uri,
        backchannel_logout_session_required=backchannel_logout_session_required, jwks=jwks,
        jwks_uri=jwks_uri, sector_identifier_uri=sector_identifier_uri, contacts=contacts,
        client_name_i18n=client_name_i18n, logo_uri=logo_uri, policy_uri=policy_uri,
        tos_uri=tos_uri, default_acr_values=default_acr_values,
        default_max_age=default_max_age, require_auth_time=require_auth_time,
        allowed_claims=None, check_jwks=check_jwks_uri)
    current_scopes = set((client.scope or "").split())
    widened = [s for s in values["scope"].split() if s not in current_scopes]
    if widened:
        raise InvalidClientMetadata("scope", f"{' '.join(widened)} is more than this portal "
                                             "may ask for; an administrator decides that")
    if values["subject_type"] != client.subject_type:
        raise InvalidClientMetadata("subject_type", "cannot change: every citizen's sub at "
                                                    "this portal would change")
    if client.subject_type == "pairwise" and client.status != ClientStatus.PENDING and \
            client.sector_identifier and \
            values["sector_identifier"] != client.sector_identifier and \
            not client.sector_identifier.startswith("client:"):
        raise InvalidClientMetadata(
            "redirect_uris", f"the redirect URIs move the portal from sector "
                             f"{client.sector_identifier} to {values['sector_identifier']}, "
                             "which would change every citizen's sub; keep the host or "
                             "register a sector_identifier_uri listing every redirect URI")
    changed = sorted(k for k in _UPDATABLE if getattr(client, k) != values[k])
    previous_method = client.token_endpoint_auth_method
    for key in _UPDATABLE:
        setattr(client, key, values[key])
    plain_secret = None
    if values["token_endpoint_auth_method"] in SECRET_METHODS:
        if previous_method not in SECRET_METHODS or not client.client_secret_hash:
            plain_secret = new_secret()
            client.client_secret_hash = hash_secret(plain_secret)
            client.client_secret_expires_at = None
    else:
        client.client_secret_hash = None
        client.client_secret_expires_at = None
    record(session, AuditTag.CLIENT_UPDATED, actor=actor, client_id=client.client_id,
           details={"changed": changed, "redirect_uris": values["redirect_uris"],
                    "scope": values["scope"], "new_secret": plain_secret is not None})
    session.flush()
    return plain_secret


def delete_client(session: Session, client: Client, *, actor: str = "cli") -> int:
    """Delete a portal: revoke its tokens, remove the row (codes, tokens, consents and data
    access requests go with it through ON DELETE CASCADE), audit it. Returns how many tokens
    were revoked. The audit log keeps the record. The caller commits."""
    revoked = session.execute(
        update(Token)
        .where(Token.client_pk == client.id, Token.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)).rowcount or 0
    record(session, AuditTag.CLIENT_DELETED, actor=actor, client_id=client.client_id,
           details={"client_name": client.client_name, "status": client.status,
                    "registered_via": client.registered_via,
                    "organisation_id": client.organisation_id, "tokens_revoked": revoked})
    session.execute(delete(Client).where(Client.id == client.id)
                    .execution_options(synchronize_session=False))
    session.expunge(client)
    session.flush()
    return revoked


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


def approve_client(session: Session, client: Client, *, actor: str = "cli") -> None:
    """Pending -> active, audited as ``client:client:approved`` (after set_status's event)."""
    if client.status != ClientStatus.PENDING:
        raise ClientError(f"client {client.client_id} is {client.status}, not pending")
    set_status(session, client, ClientStatus.ACTIVE, actor=actor)
    record(session, AuditTag.CLIENT_APPROVED, actor=actor, client_id=client.client_id,
           details={"previous_status": ClientStatus.PENDING.value, "scope": client.scope,
                    "allowed_claims": client.allowed_claims})
    session.flush()


def rotate_secret(session: Session, client: Client, *, actor: str = "cli") -> str:
    """A new secret for a confidential (secret-based) client; the old one stops working."""
    if client.token_endpoint_auth_method not in SECRET_METHODS:
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
        "client_name_i18n": dict(client.client_name_i18n or {}),
        "logo_uri": client.logo_uri,
        "policy_uri": client.policy_uri,
        "tos_uri": client.tos_uri,
        "contacts": list(client.contacts or []),
        "default_acr_values": list(client.default_acr_values or []),
        "default_max_age": client.default_max_age,
        "require_auth_time": client.require_auth_time,
        "allowed_claims": (list(client.allowed_claims)
                           if client.allowed_claims is not None else None),
        "organisation_id": client.organisation_id,
        "registered_via": client.registered_via,
        "client_secret_expires_at": (int(client.client_secret_expires_at.timestamp())
                                     if client.client_secret_expires_at else 0),
        "created_at": client.created_at.isoformat() if client.created_at else None,
    }
