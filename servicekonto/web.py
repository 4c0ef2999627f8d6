"""Request plumbing shared by every page: request ids, language choice, security headers."""

from __future__ import annotations

import re
import secrets

from flask import Flask, Response, g, has_request_context, request, session
from flask_babel import get_locale

from servicekonto.settings import current_settings

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def select_locale() -> str:
    """``?lang=`` (remembered in the session) > session > Accept-Language > first locale.

    Outside a request (CLI, background work) the first locale.
    """
    locales = current_settings()["locales"]
    if not has_request_context():
        return locales[0]
    asked = request.args.get("lang")
    if asked in locales:
        if session.get("lang") != asked:
            session["lang"] = asked
        return asked
    remembered = session.get("lang")
    if remembered in locales:
        return remembered
    return request.accept_languages.best_match(locales) or locales[0]


def init_web(app: Flask) -> None:
    app.jinja_env.globals["current_locale"] = lambda: str(get_locale())

    @app.before_request
    def _request_id() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else secrets.token_hex(8)

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Request-ID", g.get("request_id", ""))
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        if response.mimetype == "text/html":
            headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            headers.setdefault("X-Frame-Options", "DENY")
            headers.setdefault("Cache-Control", "no-store")
        if current_settings()["env"] == "production":
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response
