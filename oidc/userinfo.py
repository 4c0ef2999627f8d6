"""``/userinfo`` (OIDC Core 5.3), GET and POST.

The bearer token comes in the Authorization header or (POST, form-encoded) as ``access_token``
(RFC 6750 2.1/2.2; never in the query string). Released: the claims that are both within the
token's scope (or its ``claims`` request's ``userinfo`` member) AND consented to now, so a
withdrawn consent takes effect at once. A bad, expired or revoked token gets 401 with
``WWW-Authenticate: Bearer error="invalid_token"``. Every release is audited with claim names.
"""

from __future__ import annotations

from flask import Response, jsonify, request
from sqlalchemy import and_, bindparam, select

from oidc import claims as claims_mod
from oidc import tokens
from oidc.errors import JsonError, json_response
from oidc.models import ClientStatus, Token
from oidc.server import client_by_pk, subject_for
from servicekonto import prepared
from servicekonto.accounts.models import CitizenRow, User, citizen_columns
from servicekonto.audit import AuditTag
from servicekonto.audit.service import entry, insert_committed
from servicekonto.consent.models import Consent
from servicekonto.db import db

#: The hot path's one query, built once: the token's few columns the endpoint needs, its
#: citizen's columns (plain, no ORM entity) and the claims they consented to for the token's
#: client.
_LOOKUP = (
    select(Token.client_pk, Token.scope, Token.claims_request, Token.acr, Token.revoked_at,
           Token.access_expires_at, *citizen_columns(), Consent.granted_claims)
    .join(User, User.id == Token.user_id)
    .outerjoin(Consent, and_(Consent.user_id == Token.user_id,
                             Consent.client_pk == Token.client_pk))
    .where(Token.access_token_hash == bindparam("digest")))


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    from_header = None
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise JsonError("invalid_request", "Use the Bearer scheme.", 400, bearer=True)
        from_header = value.strip()
    from_body = None
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        from_body = request.form.get("access_token")
    if from_header and from_body:
        raise JsonError("invalid_request", "Send the token only once.", 400, bearer=True)
    token = from_header or from_body
    if not token:
        raise JsonError("invalid_token", "No access token was sent.", 401, bearer=True)
    return token


def userinfo() -> Response:
    """Two autocommit statements, no transaction around them: the lookup, then the disclosure
    audit entry (one INSERT, atomic on its own). The claims leave only after that INSERT
    succeeded; if it fails, the request fails and nothing is released."""
    with db.reader.connect() as conn:
        try:
            value = _bearer()
            # One query: the token with its citizen and consent (hot path); the client from
            # the client cache (oidc.server).
            row = prepared.fetch_first(conn, _LOOKUP, {"digest": tokens.hash_token(value)})
            if row is None or not tokens.is_access_active(row):  # type: ignore[arg-type]
                raise JsonError("invalid_token",
                                "The access token is invalid, expired or revoked.", 401,
                                bearer=True)
            user = CitizenRow(row)
            client = client_by_pk(row.client_pk)
            if "openid" not in row.scope.split():
                raise JsonError("insufficient_scope", "The token was not issued for openid.",
                                403, bearer=True)
            if user.is_disabled or client is None or client.status != ClientStatus.ACTIVE:
                raise JsonError("invalid_token", "The account or portal is no longer available.",
                                401, bearer=True)
        except JsonError as exc:
            return json_response(exc)
        names = claims_mod.userinfo_claims(row.scope, row.claims_request,
                                           row.granted_claims or [], client.allowed_claims)
        values = claims_mod.claim_values(user, names)  # type: ignore[arg-type]
        body = {"sub": subject_for(client, row.id), **values}
        insert_committed(conn, db.engine, entry(
            AuditTag.OIDC_CLAIMS_RELEASED, actor=f"client:{client.client_id}",
            subject_user_id=row.id, client_id=client.client_id,
            details={"via": "userinfo", "claims": ["sub", *sorted(values)], "acr": row.acr}))
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
