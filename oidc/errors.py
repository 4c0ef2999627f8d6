"""Typed protocol errors and the one place that turns them into responses.

Three kinds, after where the answer may go:

* ``PageError``: the browser-facing authorization endpoint cannot trust the client or its
  redirect URI (unknown client, unregistered redirect_uri, suspended portal, a tampered
  pending-request id). Rendered as an HTML page; NEVER redirected.
* ``AuthorizeError``: the client and redirect URI are verified; the error goes back to the
  client (``error``, ``error_description``, ``state``, ``iss`` per RFC 9207) through the
  request's response mode (query or form_post).
* ``JsonError``: userinfo: JSON body, status code, ``no-store``; bearer errors carry
  ``WWW-Authenticate`` (RFC 6750 section 3). The token endpoint's errors are Authlib's
  ``OAuth2Error`` (raised in oidc/grants.py), rendered by Authlib the same way (JSON,
  ``no-store``, 401 for failed HTTP Basic client authentication).

Example::

    raise AuthorizeError("login_required", "The citizen is not logged in.")
"""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, render_template
from flask_babel import lazy_gettext as _l


class OIDCError(Exception):
    """Base: ``error`` code, a public description, an HTTP status."""

    status = 400

    def __init__(self, error: str, description: str = "", status: int | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        if status is not None:
            self.status = status


class PageError(OIDCError):
    """Shown to the citizen as an HTML page, never sent to a redirect URI."""

    def __init__(self, error: str, description: str = "", *, title: Any = None,
                 message: Any = None, status: int = 400) -> None:
        super().__init__(error, description, status)
        self.title = title or _l("The sign-in request cannot be processed")
        self.message = message or _l(
            "The portal that sent you here made an invalid request. Please go back to the "
            "portal and try again; if the problem persists, contact the portal's operator.")


class AuthorizeError(OIDCError):
    """Sent back to the (verified) client's redirect URI."""


class JsonError(OIDCError):
    """JSON error for token/userinfo; ``bearer=True`` adds ``WWW-Authenticate``."""

    def __init__(self, error: str, description: str = "", status: int = 400, *,
                 bearer: bool = False) -> None:
        super().__init__(error, description, status)
        self.bearer = bearer


def page_response(error: PageError) -> Response:
    body = render_template("oidc/error.html", title=error.title, message=error.message,
                           error=error.error, request_id=g.get("request_id"))
    response = Response(body, status=error.status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def json_response(error: JsonError) -> Response:
    body: dict[str, str] = {"error": error.error}
    if error.description:
        body["error_description"] = error.description
    response = jsonify(body)
    response.status_code = error.status
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    if error.bearer:
        value = f'Bearer error="{error.error}"'
        if error.description:
            value += f', error_description="{error.description}"'
        response.headers["WWW-Authenticate"] = value
    return response
