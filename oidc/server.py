"""The Authlib authorization server and the few provider-wide helpers the endpoints share.

``build_server(app)`` creates the Flask ``AuthorizationServer`` used by the token endpoint
(grant dispatch, client authentication, OAuth error bodies). The authorization endpoint is our
own pipeline (oidc/authorize.py) because it needs server-side pending requests, prompt handling,
form_post and RFC 9207 ``iss``, which Authlib's grant flow does not model.

Helpers: ``issuer()``, ``get_client(client_id)`` (active or not; callers check status),
``subject_for(client, user_id)`` and ``reachable_acr_values()``.
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from flask import Flask, current_app

from oidc.models import Client, ClientStatus
from servicekonto.accounts.trust_levels import LOA_LOW
from servicekonto.settings import current_settings

SERVER_KEY = "servicekonto.oidc_server"


def issuer() -> str:
    return current_settings()["issuer"].rstrip("/")


def reachable_acr_values() -> list[str]:
    """Levels a citizen can reach here today (advertised in discovery).

    Only the basic level (verified e-mail and password) until second factors arrive; extend
    this list when the accounts package offers a way to reach a higher level.
    """
    return [LOA_LOW]


def get_client(client_id: str) -> Client | None:
    """The client row for ``client_id`` (any status; callers check it), or None."""
    from oidc.clients import get_client as _get

    return _get(client_id, include_inactive=True)


def subject_for(client: Client, user_id: int) -> str:
    """The ``sub`` this client sees for the citizen (pairwise per sector, or public)."""
    from oidc.subjects import subject_for as _subject

    return _subject(client, user_id)


def _query_client(client_id: str) -> Client | None:
    client = get_client(client_id)
    if client is None or client.status != ClientStatus.ACTIVE:
        return None
    return client


def _save_token(token: dict[str, Any], request: Any) -> None:
    """Tokens are stored by the grants themselves (oidc/grants.py)."""


def build_server(app: Flask) -> AuthorizationServer:
    from oidc import grants

    server = AuthorizationServer(app, query_client=_query_client, save_token=_save_token)
    server.register_grant(grants.AuthorizationCodeGrant)
    server.register_grant(grants.RefreshTokenGrant)
    server.register_grant(grants.ClientCredentialsGrant)
    app.extensions[SERVER_KEY] = server
    return server


def get_server() -> AuthorizationServer:
    return current_app.extensions[SERVER_KEY]
