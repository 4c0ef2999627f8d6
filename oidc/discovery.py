"""Provider metadata: ``/.well-known/openid-configuration`` (OIDC Discovery 1.0) and
``/.well-known/oauth-authorization-server`` (RFC 8414). Same document.

Truthful by construction: endpoints come from ``url_for`` (an endpoint whose route is not
registered is left out), algorithms and auth methods from the settings and the registered
client authentication methods, acr values from what a citizen can reach today. Cacheable for
a short time (it changes only with a deployment or a settings change).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Blueprint, Response, current_app, request, url_for
from werkzeug.routing import BuildError

from oidc import claims as claims_mod
from oidc.server import SERVER_KEY, issuer, reachable_acr_values
from servicekonto.settings import current_settings

bp = Blueprint("oidc_discovery", __name__)

MAX_AGE_SECONDS = 3600


def _url(endpoint: str) -> str | None:
    try:
        return issuer() + url_for(endpoint)
    except BuildError:
        return None


def _auth_methods() -> list[str]:
    server = current_app.extensions.get(SERVER_KEY)
    auth = getattr(server, "_client_auth", None)
    known = list(getattr(auth, "_methods", {}) or ["client_secret_basic", "client_secret_post",
                                                   "none"])
    order = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
    return [m for m in order if m in known] + [m for m in known if m not in order]


def metadata() -> dict[str, Any]:
    settings = current_settings()
    algs = list(settings["id_token_signing_algs"])
    methods = _auth_methods()
    doc: dict[str, Any] = {
        "issuer": issuer(),
        "authorization_endpoint": _url("oidc.authorize"),
        "token_endpoint": _url("oidc.token"),
        "userinfo_endpoint": _url("oidc.userinfo"),
        "jwks_uri": _url("oidc_keys.jwks"),
        "end_session_endpoint": _url("oidc_session.end_session"),
        "revocation_endpoint": _url("oidc_session.revocation"),
        "introspection_endpoint": _url("oidc_session.introspection"),
        "registration_endpoint": _url("oidc_registration.register"),
        "scopes_supported": list(claims_mod.SCOPES_SUPPORTED),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["pairwise", "public"],
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": methods,
        "claims_supported": list(claims_mod.CLAIMS_SUPPORTED),
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "code_challenge_methods_supported": ["S256"],
        "acr_values_supported": reachable_acr_values(),
        "authorization_response_iss_parameter_supported": True,
        "ui_locales_supported": list(settings["locales"]),
        "claims_locales_supported": ["de"],
        "display_values_supported": ["page"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
    }
    if "private_key_jwt" in methods:
        from oidc.client_auth import ASSERTION_ALGORITHMS

        doc["token_endpoint_auth_signing_alg_values_supported"] = list(ASSERTION_ALGORITHMS)
    # What oidc/token_management's endpoints accept (of the methods registered here).
    from oidc.token_management import ServicekontoIntrospection, ServicekontoRevocation

    if doc["revocation_endpoint"]:
        doc["revocation_endpoint_auth_methods_supported"] = [
            m for m in methods if m in ServicekontoRevocation.AUTH_METHODS]
    if doc["introspection_endpoint"]:
        doc["introspection_endpoint_auth_methods_supported"] = [
            m for m in methods if m in ServicekontoIntrospection.AUTH_METHODS]
    for name in ("end_session_endpoint", "revocation_endpoint", "introspection_endpoint",
                 "registration_endpoint"):
        if doc[name] is None:
            doc.pop(name)
    if "end_session_endpoint" not in doc:
        doc["backchannel_logout_supported"] = False
        doc["backchannel_logout_session_supported"] = False
    return doc


@bp.get("/.well-known/openid-configuration")
@bp.get("/.well-known/oauth-authorization-server")
def configuration() -> Response:
    body = json.dumps(metadata(), separators=(",", ":"))
    response = Response(body, mimetype="application/json")
    response.set_etag(hashlib.sha256(body.encode()).hexdigest()[:32])
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE_SECONDS}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response.make_conditional(request)
