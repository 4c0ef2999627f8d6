"""The OpenID Connect provider. Authlib stays inside this package.

``init_oidc(app)`` wires it up: signing keys and JWKS, the Authlib authorization server (token
endpoint grants, client authentication), the authorization/consent/token/userinfo routes,
discovery, and the logout and token-management parts. The protocol endpoints that relying
parties POST to without a CSRF token are exempt from CSRF; the consent form is not.

The server is at ``app.extensions["servicekonto.oidc_server"]``.
"""

from __future__ import annotations

from flask import Flask


def init_oidc(app: Flask) -> None:
    from oidc import authorize, discovery, grants
    from oidc.client_auth import register_client_auth
    from oidc.keys import init_keys
    from oidc.server import build_server

    init_keys(app)
    server = build_server(app)
    register_client_auth(server)
    _set_auth_methods(server, grants)

    app.register_blueprint(authorize.bp)
    app.register_blueprint(discovery.bp)

    csrf = app.extensions["csrf"]
    for view in (authorize.authorize, authorize.token, authorize.userinfo_endpoint):
        csrf.exempt(view)

    from oidc import logout, registration, token_management

    app.register_blueprint(registration.bp)  # RFC 7591/7592: JSON, Bearer-authenticated
    csrf.exempt(registration.bp)
    logout.register(app, server)
    token_management.register(app, server)


def _set_auth_methods(server, grants) -> None:  # noqa: ANN001
    """Every grant accepts every registered client authentication method (the client's own
    registered method is enforced by ``check_endpoint_auth_method``)."""
    if server._client_auth is None:
        from authlib.oauth2.rfc6749.authenticate_client import ClientAuthentication

        server._client_auth = ClientAuthentication(server.query_client)
    known = list(server._client_auth._methods)
    order = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
    methods = [m for m in order if m in known] + [m for m in known if m not in order]
    grants.AUTH_METHODS[:] = methods
    grants.ClientCredentialsGrant.TOKEN_ENDPOINT_AUTH_METHODS = [m for m in methods
                                                                 if m != "none"]
