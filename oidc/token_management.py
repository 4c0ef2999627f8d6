"""Token revocation (RFC 7009) and introspection (RFC 7662) for authenticated portals.

``POST /oauth/revoke`` and ``POST /oauth/introspect`` are Authlib ``RevocationEndpoint`` /
``IntrospectionEndpoint`` subclasses registered on the provider's ``AuthorizationServer``;
client authentication uses the methods registered there (the portal's own
``token_endpoint_auth_method``). Both are exempt from CSRF: programs call them.

Rules:

* Public portals (auth method ``none``) may revoke their own tokens with ``client_id`` only;
  introspection needs an authenticated confidential client.
* A portal only sees its own tokens. Revoking another portal's token is refused
  (``invalid_grant``, nothing changes); introspecting it answers ``{"active": false}``.
* An access token and its refresh token share one row: revoking the access token revokes that
  row (RFC 7009 allows taking the refresh token along); revoking a refresh token revokes its
  whole rotation family (all access tokens issued from it too).
* Unknown tokens are "revoked" successfully (RFC 7009 section 2.2: 200, nothing to do).
* Introspection: ``active``, ``scope``, ``client_id``, ``sub`` (the pairwise subject of that
  portal), ``exp``, ``iat``, ``token_type`` (``Bearer``; ``refresh_token`` for refresh tokens),
  ``aud``, ``iss``; always ``Cache-Control: no-store``.

Example::

    curl -u "$CLIENT_ID:$CLIENT_SECRET" -d token=$REFRESH -d token_type_hint=refresh_token \\
         https://servicekonto.example/oauth/revoke
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, current_app
from sqlalchemy import bindparam, select, update

from oidc.models import Client, Token
from servicekonto import prepared
from servicekonto.audit.service import record
from servicekonto.audit.tags import AuditTag
from servicekonto.db import utcnow

#: Client authentication methods accepted here, in order, as far as the server knows them.
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt",
                "client_secret_jwt")


@dataclass
class FoundToken:
    """A token row and which of its two values was presented."""

    row: Token
    kind: str  # "access_token" | "refresh_token"
    client: Client | None = None  # set once the token's client is known (introspection)

    def is_active(self, now: dt.datetime | None = None) -> bool:
        now = now or utcnow()
        row = self.row
        if row.revoked_at is not None:
            return False
        if self.kind == "refresh_token":
            return (row.rotated_at is None and row.refresh_expires_at is not None
                    and row.refresh_expires_at > now)
        return row.access_expires_at > now


def _session() -> Any:
    from servicekonto.db import db

    return db.session


def _find(token_string: str, hint: str | None) -> FoundToken | None:
    from oidc.tokens import hash_token

    digest = hash_token(token_string)
    for kind in _order(hint):
        column = Token.access_token_hash if kind == "access_token" else Token.refresh_token_hash
        row = _session().scalar(select(Token).where(column == digest))
        if row is not None:
            return FoundToken(row, kind)
    return None


def _order(hint: str | None) -> list[str]:
    return ["refresh_token", "access_token"] if hint == "refresh_token" else [
        "access_token", "refresh_token"]


#: Introspection reads a few columns of one token and writes nothing: statements built once,
#: run in autocommit (no BEGIN/ROLLBACK round trips; see docs/performance.md).
_INTROSPECTION_COLUMNS = (Token.client_pk, Token.user_id, Token.scope, Token.token_type,
                          Token.issued_at, Token.access_expires_at, Token.refresh_expires_at,
                          Token.rotated_at, Token.revoked_at, Token.acr, Token.auth_time)
_PEEK = {kind: select(*_INTROSPECTION_COLUMNS).where(column == bindparam("digest"))
         for kind, column in (("access_token", Token.access_token_hash),
                              ("refresh_token", Token.refresh_token_hash))}


def _peek(token_string: str, hint: str | None) -> FoundToken | None:
    """Like ``_find``, read-only, as plain rows (the introspection hot path)."""
    from oidc.tokens import hash_token
    from servicekonto.db import db

    digest = {"digest": hash_token(token_string)}
    with db.reader.connect() as conn:
        for kind in _order(hint):
            row = prepared.fetch_first(conn, _PEEK[kind], digest)
            if row is not None:
                return FoundToken(row, kind)  # type: ignore[arg-type]
    return None


def client_row(client: Any) -> Client | None:
    """Our Client row for whatever the server's ``query_client`` returned."""
    if isinstance(client, Client):
        return client
    for attr in ("row", "model", "client"):
        inner = getattr(client, attr, None)
        if isinstance(inner, Client):
            return inner
    client_id = getattr(client, "client_id", None)
    if client_id is None and hasattr(client, "get_client_id"):
        client_id = client.get_client_id()
    if client_id is None:
        return None
    return _session().scalar(select(Client).where(Client.client_id == client_id))


def _methods(server: Any, allowed: tuple[str, ...]) -> list[str]:
    auth = getattr(server, "_client_auth", None)
    known = getattr(auth, "_methods", None)
    if not known:
        return ["client_secret_basic", "client_secret_post"]
    return [m for m in allowed if m in known]


class _ClientAuthMixin:
    server: Any
    ENDPOINT_NAME: str
    #: Methods tried in order; each client must use its registered one.
    AUTH_METHODS: tuple[str, ...] = AUTH_METHODS

    def authenticate_endpoint_client(self, request: Any) -> Any:  # noqa: ANN401
        client = self.server.authenticate_client(
            request, _methods(self.server, self.AUTH_METHODS), self.ENDPOINT_NAME)
        request.client = client
        return client


class ServicekontoRevocation(_ClientAuthMixin, RevocationEndpoint):
    #: Public clients (PKCE, no secret) may revoke their own tokens with just ``client_id``
    #: (RFC 7009 section 5); introspection stays for confidential clients.
    AUTH_METHODS = (*AUTH_METHODS, "none")

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        return _find(token_string, token_type_hint)

    def authenticate_token(self, request: Any, client: Any) -> FoundToken | None:  # noqa: ANN401
        self.check_params(request, client)
        found = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        if found is None:
            return None
        own = client_row(client)
        if own is None or found.row.client_pk != own.id:
            raise InvalidGrantError("The token was not issued to this client.")
        return found

    def revoke_token(self, token: FoundToken, request: Any) -> None:  # noqa: ANN401
        session = _session()
        row = token.row
        if token.kind == "refresh_token":
            from oidc.tokens import revoke_family

            count = revoke_family(session, row.family_id)
        else:
            result = session.execute(
                update(Token).where(Token.id == row.id, Token.revoked_at.is_(None))
                .values(revoked_at=utcnow()).execution_options(synchronize_session=False))
            count = result.rowcount or 0
        client = client_row(request.client)
        record(session, AuditTag.OIDC_TOKEN_REVOKED,
               actor=f"client:{client.client_id}" if client else "client",
               subject_user_id=row.user_id, client_id=client.client_id if client else None,
               details={"token_type": token.kind, "family_id": row.family_id,
                        "rows_revoked": count})
        session.commit()


class ServicekontoIntrospection(_ClientAuthMixin, IntrospectionEndpoint):
    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        return _peek(token_string, token_type_hint)

    def check_permission(self, token: FoundToken, client: Any, request: Any) -> bool:  # noqa: ANN401
        own = client_row(client)
        allowed = own is not None and token.row.client_pk == own.id
        if allowed:
            token.client = own  # the token's own client (cached row): no second read
        return allowed

    def create_introspection_payload(self, token: FoundToken | None) -> dict[str, Any]:
        if token is None or not token.is_active():
            return {"active": False}
        return self.introspect_token(token)

    def introspect_token(self, token: FoundToken) -> dict[str, Any]:
        row = token.row
        client = token.client or _session().get(Client, row.client_pk)
        if client is None or client.status != "active":
            return {"active": False}
        expires = row.access_expires_at if token.kind == "access_token" else (
            row.refresh_expires_at)
        payload: dict[str, Any] = {
            "active": True,
            "scope": row.scope,
            "client_id": client.client_id,
            "token_type": row.token_type if token.kind == "access_token" else "refresh_token",
            "exp": int(expires.timestamp()) if expires else None,
            "iat": int(row.issued_at.timestamp()),
            "aud": client.client_id,
            "iss": current_app.config["SERVICEKONTO"]["issuer"].rstrip("/"),
        }
        if row.user_id is not None:
            from oidc.subjects import subject_for

            payload["sub"] = subject_for(client, row.user_id)
        if row.acr:
            payload["acr"] = row.acr
        if row.auth_time:
            payload["auth_time"] = row.auth_time
        return {k: v for k, v in payload.items() if v is not None}


def revocation() -> Any:
    """RFC 7009 revocation endpoint."""
    return current_app.extensions["servicekonto.oidc_server"].create_endpoint_response(
        ServicekontoRevocation.ENDPOINT_NAME)


def introspection() -> Any:
    """RFC 7662 introspection endpoint."""
    return current_app.extensions["servicekonto.oidc_server"].create_endpoint_response(
        ServicekontoIntrospection.ENDPOINT_NAME)


def register(app: Flask, server: Any) -> None:
    """Register the revocation and introspection endpoints on ``server`` and their routes."""
    server.register_endpoint(ServicekontoRevocation)
    server.register_endpoint(ServicekontoIntrospection)
    # Endpoint names in the ``oidc_session`` namespace (discovery uses url_for on them); plain
    # app rules, so this works whether or not oidc.logout registered its blueprint yet.
    app.add_url_rule("/oauth/revoke", endpoint="oidc_session.revocation",
                     view_func=revocation, methods=["POST"])
    app.add_url_rule("/oauth/introspect", endpoint="oidc_session.introspection",
                     view_func=introspection, methods=["POST"])
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(revocation)
        csrf.exempt(introspection)
