"""Programmatic client registration: OIDC Dynamic Client Registration 1.0 / RFC 7591 (``POST
/oauth/register``) and RFC 7592 management (``GET``/``PUT``/``DELETE /oauth/register/<id>``).

Why not Authlib's ``ClientRegistrationEndpoint``/``ClientConfigurationEndpoint``: they answer a
missing token with 403 ``access_denied`` (RFC 7591/6750 want 401 ``invalid_token``), always
generate a client secret (also for public and private_key_jwt clients) and validate with
their own claims classes; ours is ``oidc.clients`` (shared with the CLI and the operator
pages), so the HTTP layer here is a thin JSON adapter around it.

The pipeline of ``POST /register``, in order:

1. ``_initial_token``   Bearer initial access token, usable (not revoked/expired/exhausted)
                        -> else 401 ``invalid_token`` (before the body is even read)
2. ``_json_body``       application/json (415), at most ``MAX_BODY_BYTES`` (413), a JSON
                        object (400 ``invalid_client_metadata``)
3. ``_client_kwargs``   RFC 7591 member names -> ``create_client`` arguments; unsupported
                        features refused; ``scope`` cut to the initial token's scopes
4. ``create_client``    every value checked (redirect URIs, jwks_uri fetched, sector document
                        fetched and checked) -> 400 ``invalid_redirect_uri`` /
                        ``invalid_client_metadata``
5. ``consume_initial_token``  one use taken atomically in the same transaction as the insert;
                        any failure rolls both back: nothing half-registered remains.

New clients are ``pending`` (an administrator approves them) unless the initial token was
pre-approved. The registration access token (RFC 7592) is stored as SHA-256 only; a wrong,
missing or other client's token gets the same 401, so nothing leaks about which client ids
exist.
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

from flask import Blueprint, Response, request, url_for
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from oidc.clients import (
    SECRET_METHODS,
    UNSUPPORTED_METADATA,
    InvalidClientMetadata,
    create_client,
    delete_client,
    update_client,
)
from oidc.errors import JsonError, json_response
from oidc.models import Client, ClientStatus
from oidc.server import issuer
from oidc.tokens import hash_token, new_secret
from servicekonto.db import db
from servicekonto.portals.initial_tokens import (
    InitialTokenError,
    check_initial_token,
    consume_initial_token,
)

bp = Blueprint("oidc_registration", __name__)

MAX_BODY_BYTES = 64 * 1024
#: RFC 7592 2.2: an update request MUST NOT contain these (they are the server's).
SERVER_MEMBERS = ("registration_access_token", "registration_client_uri",
                  "client_secret_expires_at", "client_id_issued_at")


# -- helpers ----------------------------------------------------------------------------------

def _json(body: dict[str, Any], status: int) -> Response:
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _metadata_error(exc: InvalidClientMetadata) -> JsonError:
    return JsonError(exc.error, f"{exc.field}: {exc.description}", 400)


def _bearer(what: str) -> str:
    """The Bearer token from the Authorization header (never from the query or the body)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if not header or scheme.lower() != "bearer" or not value.strip():
        raise JsonError("invalid_token", f"Send the {what} as a Bearer token in the "
                                         "Authorization header.", 401, bearer=True)
    return value.strip()


def _json_body() -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise JsonError("invalid_client_metadata",
                        "Send the client metadata as a JSON object (Content-Type: "
                        "application/json).", 415)
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise JsonError("invalid_client_metadata",
                        f"The request body is larger than {MAX_BODY_BYTES} bytes.", 413)
    raw = b""
    try:  # read at most one byte too many, also without Content-Length (chunked)
        while len(raw) <= MAX_BODY_BYTES:
            chunk = request.stream.read(MAX_BODY_BYTES + 1 - len(raw))
            if not chunk:
                break
            raw += chunk
    except RequestEntityTooLarge:
        raw = b"x" * (MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise JsonError("invalid_client_metadata",
                        f"The request body is larger than {MAX_BODY_BYTES} bytes.", 413)

    def _no_constants(name: str) -> Any:
        raise ValueError(name)

    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError):
        raise JsonError("invalid_client_metadata", "The request body is not valid JSON.",
                        400) from None
    if not isinstance(data, dict):
        raise JsonError("invalid_client_metadata", "The request body must be a JSON object.",
                        400)
    return data


_TYPES: dict[str, tuple[type, ...]] = {
    "client_name": (str,), "redirect_uris": (list,), "post_logout_redirect_uris": (list,),
    "grant_types": (list,), "response_types": (list,), "scope": (str,),
    "token_endpoint_auth_method": (str,), "subject_type": (str,),
    "id_token_signed_response_alg": (str,), "sector_identifier_uri": (str,),
    "jwks": (dict,), "jwks_uri": (str,), "logo_uri": (str,), "policy_uri": (str,),
    "tos_uri": (str,), "contacts": (list,), "backchannel_logout_uri": (str,),
    "backchannel_logout_session_required": (bool,), "default_acr_values": (list,),
    "default_max_age": (int,), "require_auth_time": (bool,),
    "token_endpoint_auth_signing_alg": (str,), "client_id": (str,), "client_secret": (str,),
}
_ARRAY_OF_STRINGS = ("redirect_uris", "post_logout_redirect_uris", "grant_types",
                     "response_types", "contacts", "default_acr_values")


def _checked(data: dict[str, Any]) -> dict[str, Any]:
    """Types of the members we understand (``null`` counts as absent)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        types = _TYPES.get(key)
        if types is not None:
            if not isinstance(value, types) or (isinstance(value, bool)
                                                and bool not in types):
                kind = {str: "a string", list: "a JSON array", dict: "a JSON object",
                        bool: "true or false", int: "a number"}[types[0]]
                raise InvalidClientMetadata(key, f"must be {kind}")
            if key in _ARRAY_OF_STRINGS and not all(isinstance(v, str) for v in value):
                raise InvalidClientMetadata(key, "must be a JSON array of strings")
        out[key] = value
    return out


def _cut_scope(requested: str | None, ceiling: str) -> str:
    """The requested scopes the administrator allowed (``openid`` always); none asked: all."""
    allowed = ceiling.split()
    if requested is None:
        return " ".join(dict.fromkeys(["openid", *allowed]))
    wanted = requested.split()
    return " ".join(dict.fromkeys(["openid", *(s for s in wanted if s in allowed)]))


def _client_kwargs(data: dict[str, Any], *, scope_ceiling: str,
                   keep_scope: bool = False) -> dict[str, Any]:
    """RFC 7591 members -> ``create_client``/``update_client`` keyword arguments."""
    from oidc.client_auth import ASSERTION_ALGORITHMS

    if "software_statement" in data:
        raise JsonError("unapproved_software_statement",
                        "Software statements are not accepted here.", 400)
    data = _checked(data)
    for member, reason in UNSUPPORTED_METADATA.items():
        if data.get(member) not in (None, [], ""):
            raise InvalidClientMetadata(member, f"not supported: {reason}")
    signing_alg = data.get("token_endpoint_auth_signing_alg")
    if signing_alg is not None and signing_alg not in ASSERTION_ALGORITHMS:
        raise InvalidClientMetadata("token_endpoint_auth_signing_alg",
                                    f"{signing_alg!r} is not one of "
                                    f"{', '.join(ASSERTION_ALGORITHMS)}")
    names = {key.split("#", 1)[1]: value for key, value in data.items()
             if key.startswith("client_name#")}
    for tag, value in names.items():
        if not isinstance(value, str):
            raise InvalidClientMetadata(f"client_name#{tag}", "must be a string")
    name = data.get("client_name") or names.get("de") or names.get("en") or \
        next(iter(names.values()), None)
    if not name:
        raise InvalidClientMetadata("client_name", "a name is required: the portal's name as "
                                                   "citizens should see it")
    if keep_scope and "scope" not in data:
        scope = None
    else:
        scope = _cut_scope(data.get("scope"), scope_ceiling)
    return {
        "name": name,
        "client_name_i18n": names,
        "redirect_uris": data.get("redirect_uris"),
        "post_logout_redirect_uris": data.get("post_logout_redirect_uris"),
        "scope": scope,
        "grant_types": data.get("grant_types"),
        "response_types": data.get("response_types"),
        "auth_method": data.get("token_endpoint_auth_method", "client_secret_basic"),
        "subject_type": data.get("subject_type", "pairwise"),
        "id_token_signed_response_alg": data.get("id_token_signed_response_alg", "RS256"),
        "userinfo_signed_response_alg": data.get("userinfo_signed_response_alg"),
        "backchannel_logout_uri": data.get("backchannel_logout_uri"),
        "backchannel_logout_session_required": data.get("backchannel_logout_session_required",
                                                        False),
        "jwks": data.get("jwks"),
        "jwks_uri": data.get("jwks_uri"),
        "sector_identifier_uri": data.get("sector_identifier_uri"),
        "contacts": data.get("contacts"),
        "logo_uri": data.get("logo_uri"),
        "policy_uri": data.get("policy_uri"),
        "tos_uri": data.get("tos_uri"),
        "default_acr_values": data.get("default_acr_values"),
        "default_max_age": data.get("default_max_age"),
        "require_auth_time": data.get("require_auth_time", False),
        "check_jwks_uri": True,
    }


def registration_client_uri(client_id: str) -> str:
    return issuer() + url_for("oidc_registration.configuration", client_id=client_id)


def registration_metadata(client: Client) -> dict[str, Any]:
    """The client as an RFC 7591 client information response (no secrets, absent = omitted).

    ``status`` (``pending``, ``active``, ``suspended``) is this provider's extension.
    """
    body: dict[str, Any] = {
        "client_id": client.client_id,
        "client_id_issued_at": int(client.created_at.timestamp()) if client.created_at
        else int(time.time()),
        "client_name": client.client_name,
        "redirect_uris": list(client.redirect_uris or []),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris or []),
        "grant_types": list(client.grant_types or []),
        "response_types": list(client.response_types or []),
        "scope": client.scope,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "subject_type": client.subject_type,
        "contacts": list(client.contacts or []),
        "backchannel_logout_session_required": bool(client.backchannel_logout_session_required),
        "require_auth_time": bool(client.require_auth_time),
        "default_acr_values": list(client.default_acr_values or []),
        "status": client.status,
    }
    for tag, name in sorted((client.client_name_i18n or {}).items()):
        body[f"client_name#{tag}"] = name
    for key in ("sector_identifier_uri", "jwks", "jwks_uri", "logo_uri", "policy_uri",
                "tos_uri", "backchannel_logout_uri", "default_max_age"):
        value = getattr(client, key)
        if value is not None:
            body[key] = value
    if client.token_endpoint_auth_method in SECRET_METHODS:
        expires = client.client_secret_expires_at
        body["client_secret_expires_at"] = int(expires.timestamp()) if expires else 0
    return body


def _information(client: Client, registration_token: str, *,
                 secret: str | None = None) -> dict[str, Any]:
    body = registration_metadata(client)
    if secret is not None:
        body["client_secret"] = secret
        body.setdefault("client_secret_expires_at", 0)
    body["registration_access_token"] = registration_token
    body["registration_client_uri"] = registration_client_uri(client.client_id)
    return body


# -- POST /register (RFC 7591) ----------------------------------------------------------------

@bp.post("/oauth/register")
def register() -> Response:
    session = db.session
    try:
        plain = _bearer("initial access token")
        try:
            token = check_initial_token(session, plain)
        except InitialTokenError as exc:
            raise JsonError("invalid_token", exc.description, 401, bearer=True) from None
        token_id, scope_ceiling = token.id, token.scope
        pre_approved, organisation_id = token.pre_approved, token.organisation_id
        organisation = token.organisation.name
        session.rollback()  # no transaction open while metadata URLs are fetched
        data = _json_body()
        kwargs = _client_kwargs(data, scope_ceiling=scope_ceiling)
        registration_token, registration_hash = new_secret()
        try:
            client, secret = create_client(
                session, **kwargs, operator=organisation, organisation_id=organisation_id,
                status=ClientStatus.ACTIVE if pre_approved else ClientStatus.PENDING,
                registered_via="api", initial_access_token_id=token_id,
                registration_access_token_hash=registration_hash,
                actor=f"initial_token:{token_id}")
            consume_initial_token(session, plain)
            session.commit()
        except InitialTokenError as exc:
            session.rollback()
            raise JsonError("invalid_token", exc.description, 401, bearer=True) from None
    except InvalidClientMetadata as exc:
        session.rollback()
        return json_response(_metadata_error(exc))
    except JsonError as exc:
        session.rollback()
        return json_response(exc)
    response = _json(_information(client, registration_token, secret=secret), 201)
    response.headers["Location"] = registration_client_uri(client.client_id)
    return response


# -- /register/<client_id> (RFC 7592) ---------------------------------------------------------

def _registered_client(client_id: str) -> tuple[Client, str]:
    """The client whose registration access token was sent; the same 401 for every failure."""
    plain = _bearer("registration access token")
    failure = JsonError("invalid_token", "The registration access token is invalid.", 401,
                        bearer=True)
    if len(plain) > 200:
        raise failure
    client = db.session.scalar(select(Client).where(
        Client.registration_access_token_hash == hash_token(plain)))
    if client is None or not hmac.compare_digest(client.client_id.encode(),
                                                 client_id.encode()):
        raise failure
    return client, plain


@bp.route("/oauth/register/<client_id>", methods=["GET", "PUT", "DELETE"])
def configuration(client_id: str) -> Response:
    session = db.session
    try:
        client, plain = _registered_client(client_id)
        if request.method == "GET":
            return _json(_information(client, plain), 200)
        if request.method == "DELETE":
            delete_client(session, client, actor=f"client:{client_id}")
            session.commit()
            response = Response(status=204)
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
            return response
        return _update(client, plain)
    except InvalidClientMetadata as exc:
        session.rollback()
        return json_response(_metadata_error(exc))
    except JsonError as exc:
        session.rollback()
        return json_response(exc)


def _update(client: Client, plain: str) -> Response:
    """RFC 7592 2.2: full replacement; client_id must match, a sent client_secret too."""
    session = db.session
    if client.status == ClientStatus.SUSPENDED:
        raise JsonError("unauthorized_client", "This portal is suspended; contact the "
                                               "Servicekonto administrators.", 403)
    client_id = client.client_id
    session.rollback()  # no transaction open while metadata URLs are fetched
    data = _json_body()
    present = [member for member in SERVER_MEMBERS if member in data]
    if present:
        raise JsonError("invalid_request", f"An update must not contain {', '.join(present)} "
                                           "(RFC 7592 2.2).", 400)
    if data.get("client_id") != client_id:
        raise JsonError("invalid_request", "The update must contain this client's client_id "
                                           "(it cannot be changed).", 400)
    if "client_secret" in data and not client.check_client_secret(data["client_secret"]):
        raise JsonError("invalid_request", "client_secret does not match the current secret "
                                           "(a portal cannot choose its secret).", 400)
    kwargs = _client_kwargs(data, scope_ceiling=client.scope or "openid", keep_scope=True)
    secret = update_client(session, client, **kwargs, actor=f"client:{client_id}")
    session.commit()
    return _json(_information(client, plain, secret=secret), 200)
