"""Token endpoint grants: authorization code (+ OpenID Connect ID token), refresh token with
rotation, client credentials.

Authlib dispatches on ``grant_type``, authenticates the client (methods registered by
``oidc.client_auth``) and renders OAuth errors as JSON with ``no-store``; the rules live here:

* A code is single use. The redemption is one conditional ``UPDATE ... SET used_at = now WHERE
  id = ? AND used_at IS NULL``: of two parallel redemptions exactly one changes a row. A
  replayed code fails with ``invalid_grant`` and revokes every token issued from it (RFC 6749
  4.1.2, RFC 9700 4.5), audited as OIDC_CODE_REPLAYED.
* Refresh tokens rotate on every use (conditional update on ``rotated_at``); presenting a
  rotated one again revokes the whole family (OIDC_REFRESH_TOKEN_REUSED). A refresh may narrow
  the scope, never widen it, and never outlives the family's first expiry.
* Client credentials: only for clients registered with that grant type; no user, no ID token,
  no refresh token, no user scopes.

Every issued token and every ID token's claim names are audited in the same atomic unit: the
same transaction (SQLite), or on PostgreSQL the same statement. There the code redemption and
the refresh rotation are one autocommit statement each: the conditional UPDATE, the new token's
INSERT fed by the UPDATE's ``RETURNING`` and the audit entries' INSERT fed by the token's, as
data-modifying CTEs. When the UPDATE matches no row (a parallel request won), nothing at all is
written and the request takes the replay path as before. The lookups before run in autocommit.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from joserfc import jwt
from sqlalchemy import and_, bindparam, select, update

from oidc import claims as claims_mod
from oidc import pkce, tokens
from oidc.models import AuthorizationCode, Client, Token
from oidc.server import issuer, subject_for
from servicekonto import prepared
from servicekonto.accounts.models import CitizenRow, User, citizen_columns
from servicekonto.audit import AuditTag, record
from servicekonto.audit.service import (
    entry,
    execute_audited,
    execute_audited_many,
    insert_from,
    insert_many_from,
    insert_now,
)
from servicekonto.consent.models import Consent
from servicekonto.db import db, utcnow
from servicekonto.settings import current_settings

#: Filled in by init_oidc with every method the server knows (client_secret_basic first, so
#: a failed Basic authentication answers 401 as RFC 6749 5.2 asks).
AUTH_METHODS: list[str] = ["client_secret_basic", "client_secret_post", "none"]

_HASHES = {"RS256": hashlib.sha256, "PS256": hashlib.sha256, "ES256": hashlib.sha256,
           "EdDSA": hashlib.sha512}


def _half_hash(value: str, alg: str) -> str:
    digest = _HASHES.get(alg, hashlib.sha256)(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def _check_grant_type(client: Client, grant_type: str) -> None:
    if grant_type not in (client.grant_types or []):
        raise UnauthorizedClientError(f"The client may not use grant_type={grant_type}.")


_LOOKUPS: dict[Any, Any] = {}
#: The label prefix of the citizen's columns in the lookup rows (codes and tokens have their
#: own ``id``, ``user_id`` and ``created_at``).
_CITIZEN = "citizen_"
_CODES, _TOKENS = AuthorizationCode.__table__, Token.__table__
#: Single use of a code, one rotation of a refresh token: conditional UPDATEs (Core, built once;
#: nothing in the session is synchronised, as before).
_REDEEM = (update(_CODES)
           .where(_CODES.c.id == bindparam("code_id"), _CODES.c.used_at.is_(None))
           .values(used_at=bindparam("now")))
_ROTATE = (update(_TOKENS)
           .where(_TOKENS.c.id == bindparam("token_id"), _TOKENS.c.rotated_at.is_(None),
                  _TOKENS.c.revoked_at.is_(None))
           .values(rotated_at=bindparam("rotated"), revoked_at=bindparam("revoked")))
#: PostgreSQL: a new token and its audit entry in one statement (client credentials).
_ISSUE_AUDITED = insert_from(tokens.INSERT_CTE)
#: PostgreSQL: redemption + new token + its two audit entries (token issued, ID token claims
#: released) in one statement; refresh: rotation + new token + one or two entries.
_REDEEM_AUDITED = insert_many_from(
    tokens.insert_from_cte(_REDEEM.returning(_CODES.c.id).cte("used")), 2)
_ROTATED_CHAIN = tokens.insert_from_cte(_ROTATE.returning(_TOKENS.c.id).cte("rotated"))
_ROTATE_AUDITED = {count: insert_many_from(_ROTATED_CHAIN, count) for count in (1, 2)}


def _chained() -> bool:
    """Whether the token grants write in one chained statement (PostgreSQL)."""
    return db.engine.dialect.name == "postgresql"


def _with_user_and_grant(column: Any, digest: str) -> tuple[Any, CitizenRow | None, list[str]]:
    """The code or token row whose hash ``column`` equals ``digest``, with its citizen and the
    claims they consented to for the row's client: one query instead of three (token endpoint
    hot path), as a plain row (the code's or token's columns by name, the citizen as a
    ``CitizenRow``), no ORM entities. The statement is built once per column."""
    stmt = _LOOKUPS.get(column)
    if stmt is None:
        model = column.class_
        stmt = _LOOKUPS[column] = (
            select(*model.__table__.c, *citizen_columns(_CITIZEN), Consent.granted_claims)
            .outerjoin(User, User.id == model.user_id)
            .outerjoin(Consent, and_(Consent.user_id == model.user_id,
                                     Consent.client_pk == model.client_pk))
            .where(column == bindparam("digest")))
    if _chained():
        # Autocommit (no BEGIN/ROLLBACK round trips), on the driver's cursor.
        with db.reader.connect() as conn:
            found = prepared.fetch_first(conn, stmt, {"digest": digest})
    else:
        found = db.session.execute(stmt, {"digest": digest}).first()
    if found is None:
        return None, None, []
    user = None if found.citizen_id is None else CitizenRow(found, _CITIZEN)
    return found, user, list(found.granted_claims or [])


def _live(user: CitizenRow | None) -> CitizenRow:
    if user is None or user.is_disabled:
        raise InvalidGrantError("The account no longer exists or is disabled.")
    return user


def signing_key_for(client: Client) -> tuple[str, str, Any]:
    """(alg, kid, key) for the client's ID tokens. Resolve it BEFORE the request writes: the
    first use may create the key in its own transaction (SQLite allows one writer)."""
    from oidc.keys import signing_key

    alg = client.id_token_signed_response_alg or "RS256"
    kid, key = signing_key(alg)
    return alg, kid, key


def id_token(client: Client, user: User | CitizenRow, *, access_token: str, auth_time: int | None,
             acr: str | None, amr: list[str] | None, sid: str | None, nonce: str | None,
             claims_request: dict[str, Any] | None, granted: list[str],
             signing: tuple[str, str, Any]) -> tuple[str, list[str]]:
    """Sign an ID token for ``client``; return it with the names of the user claims in it."""
    settings = current_settings()
    alg, kid, key = signing
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": issuer(), "sub": subject_for(client, user.id), "aud": client.client_id,
        "exp": now + settings["id_token_lifetime_seconds"], "iat": now,
        "azp": client.client_id, "at_hash": _half_hash(access_token, alg),
    }
    if auth_time is not None:
        payload["auth_time"] = auth_time
    if nonce:
        payload["nonce"] = nonce
    if acr:
        payload["acr"] = acr
    if amr:
        payload["amr"] = list(amr)
    if sid:
        payload["sid"] = sid
    names = claims_mod.id_token_claims(claims_request, granted, client.allowed_claims)
    values = claims_mod.claim_values(user, names)
    payload.update(values)
    token = jwt.encode({"alg": alg, "kid": kid}, payload, key, algorithms=[alg])
    return token, sorted(values)


def _token_body(access: str, refresh: str | None, scope: str, expires_in: int,
                id_tok: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                            "expires_in": expires_in, "scope": scope}
    if refresh:
        body["refresh_token"] = refresh
    if id_tok:
        body["id_token"] = id_tok
    return body


def _release_entry(client: Client, user_id: int, names: list[str], via: str) -> dict[str, Any]:
    return entry(AuditTag.OIDC_CLAIMS_RELEASED, actor=f"client:{client.client_id}",
                 subject_user_id=user_id, client_id=client.client_id,
                 details={"via": via, "claims": ["sub", *names]})


def _issues_refresh(client: Client, scopes: list[str]) -> bool:
    """A code grant comes with a refresh token when the portal may refresh and asked for
    offline access (or is registered to always get one)."""
    return "refresh_token" in (client.grant_types or []) and (
        "offline_access" in scopes or client.always_issue_refresh_token)


def _refresh_outputs(client: Client, user: Any, old: Token, scope: str, granted: Any,
                     access: str, signing: tuple[str, str, Any] | None,
                     ) -> tuple[str | None, list[dict[str, Any]]]:
    """A refresh's ID token (openid scope only) and its audit entries, in the order both
    write paths (transaction, chained statement) record them."""
    id_tok = None
    audits = []
    if signing is not None:
        id_tok, names = id_token(client, user, access_token=access,
                                 auth_time=old.auth_time, acr=old.acr, amr=old.amr,
                                 sid=old.sid, nonce=None,
                                 claims_request=old.claims_request, granted=granted,
                                 signing=signing)
        audits.append(_release_entry(client, user.id, names, "id_token"))
    audits.append(entry(AuditTag.OIDC_TOKEN_REFRESHED, actor=f"client:{client.client_id}",
                        subject_user_id=user.id, client_id=client.client_id,
                        details={"scope": scope.split(), "family": old.family_id}))
    return id_tok, audits


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        _check_grant_type(client, self.GRANT_TYPE)
        code = self.request.form.get("code")
        if not code:
            raise InvalidRequestError("Missing 'code' in request.")
        row, user, granted = _with_user_and_grant(AuthorizationCode.code_hash,
                                                  tokens.hash_token(code))
        if row is None or row.client_pk != client.id:
            raise InvalidGrantError("Invalid code.")
        if row.used_at is not None:
            self._replayed(client, row)
        if row.expires_at <= utcnow():
            raise InvalidGrantError("The code has expired.")
        if self.request.form.get("redirect_uri") != row.redirect_uri:
            raise InvalidGrantError("redirect_uri does not match the authorization request.")
        verifier = self.request.form.get("code_verifier")
        if row.code_challenge:
            if not pkce.verify(verifier, row.code_challenge):
                raise InvalidGrantError("PKCE verification failed.")
        elif verifier:
            raise InvalidGrantError("code_verifier sent, but the code has no challenge.")
        self.request.client = client
        self.request.authorization_code = row
        self.request.code_user = (user, granted)

    def _replayed(self, client: Client, row: AuthorizationCode) -> None:
        revoked = tokens.revoke_for_code(db.session, row.id)
        record(db.session, AuditTag.OIDC_CODE_REPLAYED, actor=f"client:{client.client_id}",
               subject_user_id=row.user_id, client_id=client.client_id,
               details={"code_id": row.id, "tokens_revoked": revoked})
        db.session.commit()
        raise InvalidGrantError("The code was already used.")

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client: Client = self.request.client
        row: AuthorizationCode = self.request.authorization_code
        signing = signing_key_for(client)
        if _chained():
            return self._redeem_chained(client, row, signing)
        claimed = db.session.execute(_REDEEM, {"code_id": row.id, "now": utcnow()})
        if claimed.rowcount != 1:  # a parallel request redeemed it first
            db.session.rollback()
            self._replayed(client, row)
        user, granted = self.request.code_user
        user = _live(user)
        settings = current_settings()
        scopes = row.scope.split()
        with_refresh = _issues_refresh(client, scopes)
        token, access, refresh = tokens.issue(
            db.session, client=client, user_id=user.id, scope=row.scope,
            grant_type=self.GRANT_TYPE, with_refresh=with_refresh, settings=settings,
            claims_request=row.claims_request, authorization_code_id=row.id, sid=row.sid,
            auth_time=row.auth_time, acr=row.acr, amr=row.amr)
        id_tok, names = id_token(client, user, access_token=access, auth_time=row.auth_time,
                                 acr=row.acr, amr=row.amr, sid=row.sid, nonce=row.nonce,
                                 claims_request=row.claims_request, granted=granted,
                                 signing=signing)
        insert_now(db.session, entry(
            AuditTag.OIDC_TOKEN_ISSUED, actor=f"client:{client.client_id}",
            subject_user_id=user.id, client_id=client.client_id,
            details={"grant_type": self.GRANT_TYPE, "scope": scopes, "refresh": with_refresh,
                     "family": token.family_id}),
            _release_entry(client, user.id, names, "id_token"))
        db.session.commit()
        body = _token_body(access, refresh, row.scope,
                           settings["access_token_lifetime_seconds"], id_tok)
        return 200, body, self.TOKEN_RESPONSE_HEADER

    def _redeem_chained(self, client: Client, row: AuthorizationCode, signing: tuple[str, str, Any],
                        ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """PostgreSQL: redeem the code, issue the token and audit both as ONE autocommit
        statement. A code redeemed in parallel (the UPDATE matched no row) writes nothing and
        takes the replay path."""
        user, granted = self.request.code_user
        user = _live(user)  # before: the same error, its redemption rolled back
        settings = current_settings()
        scopes = row.scope.split()
        with_refresh = _issues_refresh(client, scopes)
        values, access, refresh = tokens.new_token(
            client=client, user_id=user.id, scope=row.scope, grant_type=self.GRANT_TYPE,
            with_refresh=with_refresh, settings=settings, claims_request=row.claims_request,
            authorization_code_id=row.id, sid=row.sid, auth_time=row.auth_time, acr=row.acr,
            amr=row.amr)
        id_tok, names = id_token(client, user, access_token=access, auth_time=row.auth_time,
                                 acr=row.acr, amr=row.amr, sid=row.sid, nonce=row.nonce,
                                 claims_request=row.claims_request, granted=granted,
                                 signing=signing)
        audits = [entry(AuditTag.OIDC_TOKEN_ISSUED, actor=f"client:{client.client_id}",
                        subject_user_id=user.id, client_id=client.client_id,
                        details={"grant_type": self.GRANT_TYPE, "scope": scopes,
                                 "refresh": with_refresh, "family": values["family_id"]}),
                  _release_entry(client, user.id, names, "id_token")]
        with db.reader.connect() as conn:
            params = {**tokens.chained_params(values), "code_id": row.id, "now": utcnow()}
            written = execute_audited_many(conn, db.engine, _REDEEM_AUDITED, params, audits)
        if not written:  # a parallel request redeemed it first
            self._replayed(client, row)
        body = _token_body(access, refresh, row.scope,
                           settings["access_token_lifetime_seconds"], id_tok)
        return 200, body, self.TOKEN_RESPONSE_HEADER


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        _check_grant_type(client, self.GRANT_TYPE)
        value = self.request.form.get("refresh_token")
        if not value:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        row, user, granted = _with_user_and_grant(Token.refresh_token_hash,
                                                  tokens.hash_token(value))
        if row is None or row.client_pk != client.id:
            raise InvalidGrantError("Invalid refresh token.")
        if row.rotated_at is not None:
            self._reused(client, row)
        if row.revoked_at is not None:
            raise InvalidGrantError("The refresh token was revoked.")
        if row.refresh_expires_at is None or row.refresh_expires_at <= utcnow():
            raise InvalidGrantError("The refresh token has expired.")
        requested = (self.request.form.get("scope") or "").split()
        if requested and not set(requested) <= set(row.scope.split()):
            raise InvalidScopeError("A refresh cannot widen the scope.")
        self.request.client = client
        self.request.refresh_token = row
        self.request.token_user = (user, granted)
        self.request.refresh_scope = " ".join(requested) if requested else row.scope

    def _reused(self, client: Client, row: Token) -> None:
        revoked = tokens.revoke_family(db.session, row.family_id)
        record(db.session, AuditTag.OIDC_REFRESH_TOKEN_REUSED,
               actor=f"client:{client.client_id}", subject_user_id=row.user_id,
               client_id=client.client_id,
               details={"family": row.family_id, "tokens_revoked": revoked})
        db.session.commit()
        raise InvalidGrantError("The refresh token was already used.")

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client: Client = self.request.client
        old: Token = self.request.refresh_token
        scope: str = self.request.refresh_scope
        signing = signing_key_for(client) if "openid" in scope.split() else None
        if _chained():
            return self._rotate_chained(client, old, scope, signing)
        now = utcnow()
        rotated = db.session.execute(_ROTATE, {"token_id": old.id, "rotated": now,
                                                "revoked": now})
        if rotated.rowcount != 1:  # used in parallel: a reuse
            db.session.rollback()
            self._reused(client, old)
        user, granted = self.request.token_user
        user = _live(user)
        settings = current_settings()
        token, access, refresh = tokens.issue(
            db.session, client=client, user_id=user.id, scope=scope,
            grant_type=self.GRANT_TYPE, with_refresh=True, settings=settings,
            claims_request=old.claims_request, family_id=old.family_id,
            authorization_code_id=old.authorization_code_id, sid=old.sid,
            auth_time=old.auth_time, acr=old.acr, amr=old.amr,
            refresh_expires_at=old.refresh_expires_at)
        id_tok, audit = _refresh_outputs(client, user, old, scope, granted, access, signing)
        insert_now(db.session, *audit)
        db.session.commit()
        body = _token_body(access, refresh, scope, settings["access_token_lifetime_seconds"],
                           id_tok)
        return 200, body, self.TOKEN_RESPONSE_HEADER

    def _rotate_chained(self, client: Client, old: Token, scope: str,
                        signing: tuple[str, str, Any] | None,
                        ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """PostgreSQL: rotate the old refresh token, issue the new one and audit both as ONE
        autocommit statement. A token used in parallel (the UPDATE matched no row) writes
        nothing and takes the reuse path."""
        user, granted = self.request.token_user
        user = _live(user)  # before: the same error, its rotation rolled back
        settings = current_settings()
        values, access, refresh = tokens.new_token(
            client=client, user_id=user.id, scope=scope, grant_type=self.GRANT_TYPE,
            with_refresh=True, settings=settings, claims_request=old.claims_request,
            family_id=old.family_id, authorization_code_id=old.authorization_code_id,
            sid=old.sid, auth_time=old.auth_time, acr=old.acr, amr=old.amr,
            refresh_expires_at=old.refresh_expires_at)
        id_tok, audits = _refresh_outputs(client, user, old, scope, granted, access, signing)
        now = utcnow()
        params = {**tokens.chained_params(values), "token_id": old.id, "rotated": now,
                  "revoked": now}
        with db.reader.connect() as conn:
            written = execute_audited_many(conn, db.engine, _ROTATE_AUDITED[len(audits)],
                                           params, audits)
        if not written:  # used in parallel: a reuse
            self._reused(client, old)
        body = _token_body(access, refresh, scope, settings["access_token_lifetime_seconds"],
                           id_tok)
        return 200, body, self.TOKEN_RESPONSE_HEADER


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [m for m in AUTH_METHODS if m != "none"]

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        _check_grant_type(client, self.GRANT_TYPE)
        requested = (self.request.form.get("scope") or "").split()
        allowed = set((client.scope or "").split()) - set(claims_mod.SCOPES_SUPPORTED)
        if not set(requested) <= allowed:
            raise InvalidScopeError("Scope not available to client credentials.")
        self.request.client = client
        self.request.cc_scope = " ".join(requested)

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client: Client = self.request.client
        settings = current_settings()
        audit = entry(
            AuditTag.OIDC_TOKEN_ISSUED, actor=f"client:{client.client_id}",
            client_id=client.client_id,
            details={"grant_type": self.GRANT_TYPE, "scope": self.request.cc_scope.split()})
        values, access, _ = tokens.new_token(
            client=client, user_id=None, scope=self.request.cc_scope,
            grant_type=self.GRANT_TYPE, with_refresh=False, settings=settings)
        engine = db.engine
        if engine.dialect.name == "postgresql":
            # One statement, token and audit entry (atomic on its own), in autocommit: one
            # round trip instead of BEGIN, two INSERTs and COMMIT.
            with db.reader.connect() as conn:
                execute_audited(conn, engine, _ISSUE_AUDITED, values, audit)
        else:  # SQLite has no data-modifying CTE: the two INSERTs in one transaction
            db.session.execute(tokens.INSERT, values)
            insert_now(db.session, audit)
            db.session.commit()
        body = _token_body(access, None, self.request.cc_scope,
                           settings["access_token_lifetime_seconds"])
        return 200, body, self.TOKEN_RESPONSE_HEADER
