"""The provider's tables: clients (portals), signing keys, codes, tokens, logout deliveries.

Secrets (client secrets, codes, access and refresh tokens) are stored only as SHA-256 hex of
high-entropy random values: a lookup is one indexed query, a database leak yields nothing usable.
JSON columns hold lists/dicts of registration metadata exactly as validated.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicekonto.db import Base, utcnow

BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class ClientStatus(enum.StrEnum):
    ACTIVE = "active"
    PENDING = "pending"      # registered, waiting for an administrator (operator issue)
    SUSPENDED = "suspended"  # disabled: no logins, tokens revoked


class Client(Base):
    """A portal (relying party). ``client_id`` is public; ``client_secret_hash`` SHA-256 hex."""

    __tablename__ = "oidc_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_secret_hash: Mapped[str | None] = mapped_column(String(64))
    client_secret_expires_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(String(16), default=ClientStatus.ACTIVE)
    client_name: Mapped[str] = mapped_column(String(200))
    client_name_i18n: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # {"de": ...}
    operator: Mapped[str | None] = mapped_column(String(200))
    logo_uri: Mapped[str | None] = mapped_column(String(500))
    policy_uri: Mapped[str | None] = mapped_column(String(500))
    tos_uri: Mapped[str | None] = mapped_column(String(500))
    contacts: Mapped[list[str]] = mapped_column(JSON, default=list)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["authorization_code"])
    response_types: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["code"])
    #: Space-separated scopes this client may ask for (decided by an administrator).
    scope: Mapped[str] = mapped_column(Text, default="openid")
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(40),
                                                            default="client_secret_basic")
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    jwks_uri: Mapped[str | None] = mapped_column(String(500))
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(10), default="RS256")
    userinfo_signed_response_alg: Mapped[str | None] = mapped_column(String(10))
    subject_type: Mapped[str] = mapped_column(String(10), default="pairwise")
    sector_identifier_uri: Mapped[str | None] = mapped_column(String(500))
    #: Host that pairwise subjects are computed for (redirect URI host or sector document host).
    sector_identifier: Mapped[str] = mapped_column(String(255))
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(500))
    backchannel_logout_session_required: Mapped[bool] = mapped_column(Boolean, default=False)
    default_acr_values: Mapped[list[str]] = mapped_column(JSON, default=list)
    default_max_age: Mapped[int | None]
    require_auth_time: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Refresh tokens for every code exchange, not only with ``offline_access``.
    always_issue_refresh_token: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Claims an administrator approved for this portal; None = every claim of its scopes.
    allowed_claims: Mapped[list[str] | None] = mapped_column(JSON)
    #: The operating organisation (operator self-service); None for clients made by the CLI.
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"))
    #: How it was registered: "cli", "api" (RFC 7591) or "portal" (self-service pages).
    registered_via: Mapped[str] = mapped_column(String(16), default="cli", server_default="cli")
    #: RFC 7592 registration access token (SHA-256 hex) and the initial token used.
    registration_access_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    initial_access_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("initial_access_tokens.id", ondelete="SET NULL"))

    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<Client {self.client_id}>"

    # -- Authlib ClientMixin (authlib.oauth2.rfc6749.ClientMixin); see oidc/clients.py -------

    @property
    def is_public(self) -> bool:
        """A public client (auth method ``none``) has no secret and must use PKCE."""
        return self.token_endpoint_auth_method == "none"

    @property
    def is_active(self) -> bool:
        return self.status == ClientStatus.ACTIVE

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        """Only an unambiguous default: the redirect URI when exactly one is registered."""
        return self.redirect_uris[0] if len(self.redirect_uris or []) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes this client may ask for, in request order."""
        if not scope:
            return ""
        allowed = set((self.scope or "").split())
        return " ".join(dict.fromkeys(s for s in scope.split() if s in allowed))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact string comparison with a registered redirect URI (no patterns)."""
        return isinstance(redirect_uri, str) and redirect_uri in (self.redirect_uris or [])

    def check_client_secret(self, client_secret: str) -> bool:
        import hashlib
        import hmac

        from servicekonto.db import utcnow

        if not self.client_secret_hash or not isinstance(client_secret, str):
            return False
        if self.client_secret_expires_at is not None and self.client_secret_expires_at <= utcnow():
            return False
        candidate = hashlib.sha256(client_secret.encode()).hexdigest()
        return hmac.compare_digest(candidate, self.client_secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """A client authenticates with its registered method at every endpoint."""
        return self.is_active and method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "code" in (self.response_types or [])

    def check_grant_type(self, grant_type: str) -> bool:
        return self.is_active and grant_type in (self.grant_types or [])


class SigningKey(Base):
    """A provider signing key. The private key is encrypted with the configured KEK.

    Life cycle from timestamps: published from ``created_at``; signs from ``not_before`` (the
    newest key of its algorithm past ``not_before`` and not retired signs); after ``retired_at``
    it no longer signs but stays published until ``unpublish_at`` (its last token expired).
    """

    __tablename__ = "oidc_signing_keys"
    __table_args__ = (Index("ix_oidc_signing_keys_alg", "alg", "not_before"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    alg: Mapped[str] = mapped_column(String(10))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    not_before: Mapped[dt.datetime]
    retired_at: Mapped[dt.datetime | None]
    unpublish_at: Mapped[dt.datetime | None]


class AuthorizationCode(Base):
    """A code, bound to everything the token request must match. Single use (``used_at``)."""

    __tablename__ = "oidc_authorization_codes"
    __table_args__ = (Index("ix_oidc_authorization_codes_expires_at", "expires_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("oidc_clients.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(500))
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(String(255))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(10))
    #: The ``claims`` request parameter (id_token and userinfo members), as parsed.
    claims_request: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    auth_time: Mapped[int] = mapped_column(BigInteger)
    acr: Mapped[str] = mapped_column(String(100))
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    sid: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]

    client: Mapped[Client] = relationship()


class Token(Base):
    """An access token and (optionally) its refresh token.

    Refresh rotation: using a refresh token marks this row ``rotated_at`` and issues a new row in
    the same ``family_id``; presenting a rotated refresh token again revokes the whole family.
    Tokens from a code carry ``authorization_code_id`` so a code replay can revoke them.
    """

    __tablename__ = "oidc_tokens"
    __table_args__ = (
        Index("ix_oidc_tokens_family", "family_id"),
        Index("ix_oidc_tokens_user_client", "user_id", "client_pk"),
        Index("ix_oidc_tokens_code", "authorization_code_id"),
        Index("ix_oidc_tokens_sid", "sid"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("oidc_clients.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    access_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_type: Mapped[str] = mapped_column(String(20), default="Bearer")
    scope: Mapped[str] = mapped_column(Text, default="")
    claims_request: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    family_id: Mapped[str] = mapped_column(String(64))
    authorization_code_id: Mapped[int | None] = mapped_column(BigInteger)
    grant_type: Mapped[str] = mapped_column(String(40))
    sid: Mapped[str | None] = mapped_column(String(64))
    auth_time: Mapped[int | None] = mapped_column(BigInteger)
    acr: Mapped[str | None] = mapped_column(String(100))
    amr: Mapped[list[str] | None] = mapped_column(JSON)
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    access_expires_at: Mapped[dt.datetime]
    refresh_expires_at: Mapped[dt.datetime | None]
    rotated_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    client: Mapped[Client] = relationship()


class LogoutDelivery(Base):
    """A back-channel logout token waiting to be POSTed to a portal (retried with backoff)."""

    __tablename__ = "oidc_logout_deliveries"
    __table_args__ = (Index("ix_oidc_logout_deliveries_due", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("oidc_clients.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    sub: Mapped[str] = mapped_column(String(255))
    sid: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[dt.datetime | None]
    failed_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))


class UsedAssertion(Base):
    """``jti`` values of private_key_jwt client assertions seen, until they expire (replay)."""

    __tablename__ = "oidc_used_assertions"

    jti_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[dt.datetime]
