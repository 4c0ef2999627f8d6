"""Domain errors and the one place that turns any error into a response.

HTML for browsers, JSON (``{"error": ..., "error_description": ...}``) for clients that ask for
it. Protocol endpoints (oidc/) register their own handlers for OAuth errors; everything else
ends here. A stack trace never reaches the client; real faults are logged with a request id.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g, jsonify, render_template, request, session
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)


class ServicekontoError(Exception):
    """Base of expected, user-facing errors. ``message`` is shown; keep it free of secrets."""

    status = 400
    code = "bad_request"
    title = _l("Request not possible")

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or "")
        self.message = message


class ServiceUnavailable(ServicekontoError):
    status = 503
    code = "temporarily_unavailable"
    title = _l("Temporarily unavailable")
    retry_after = 5


class TooManyAttempts(ServicekontoError):
    status = 429
    code = "too_many_requests"
    title = _l("Too many attempts")

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


_TITLES = {
    400: _l("Invalid request"),
    403: _l("Access denied"),
    404: _l("Page not found"),
    405: _l("Method not allowed"),
    413: _l("Request too large"),
    429: _l("Too many attempts"),
    500: _l("Internal error"),
    503: _l("Temporarily unavailable"),
}
_MESSAGES = {
    400: _l("The request could not be processed. Please go back and try again."),
    403: _l("You are not allowed to do this."),
    404: _l("This page does not exist. Check the address or go to the start page."),
    405: _l("This address does not accept this kind of request."),
    413: _l("The data sent was too large."),
    429: _l("Too many attempts. Please wait a moment and try again later."),
    500: _l("Something went wrong on our side. We have been notified; please try again later."),
    503: _l("The service is briefly unavailable. Please try again in a few seconds."),
}


def wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and not request.accept_mimetypes.accept_html


def error_response(status: int, code: str, title: str, message: str,
                   headers: dict[str, str] | None = None) -> Response:
    if wants_json():
        response = jsonify(error=code, error_description=message)
    else:
        try:
            body = render_template("errors/error.html", status=status, title=title,
                                   message=message, request_id=g.get("request_id"))
        except Exception:  # noqa: BLE001 - the error page itself must not fail
            log.exception("rendering the error page failed")
            body = f"<!doctype html><title>{status}</title><h1>{status}</h1><p>{title}</p>"
        response = Response(body, mimetype="text/html")
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ServicekontoError)
    def _domain(error: ServicekontoError) -> Response:
        headers = {}
        if getattr(error, "retry_after", None):
            headers["Retry-After"] = str(error.retry_after)
        message = error.message or str(_MESSAGES.get(error.status, ""))
        return error_response(error.status, error.code, str(error.title), message, headers)

    @app.errorhandler(CSRFError)
    def _csrf(error: CSRFError) -> Response:
        return error_response(
            400, "invalid_csrf_token", str(_l("Form expired")),
            str(_l("The form was expired or incomplete. Please reload the page and try again.")),
        )

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        # Flask wraps exceptions raised outside the view (e.g. saving the session) in an
        # InternalServerError, which lands here: a database that is down is still a 503.
        original = getattr(error, "original_exception", None)
        if isinstance(original, OperationalError | DBAPIError):
            return _database(original)
        status = error.code or 500
        if status >= 500:
            log.error("HTTP %s on %s", status, request.path)
        response = error_response(
            status, (error.name or "error").lower().replace(" ", "_"),
            str(_TITLES.get(status, error.name)), str(_MESSAGES.get(status, error.description)),
        )
        valid_methods = getattr(error, "valid_methods", None)
        if status == 405 and valid_methods:
            response.headers["Allow"] = ", ".join(valid_methods)
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def _database(error: Exception) -> Response:
        log.error("database unavailable: %s", type(error).__name__)
        if hasattr(session, "unavailable"):
            session.unavailable = True  # do not write the session back to a store that is down
        return error_response(503, "temporarily_unavailable", str(_TITLES[503]),
                              str(_MESSAGES[503]), {"Retry-After": "5"})

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        if isinstance(error, InternalServerError) and error.original_exception is not None:
            error = error.original_exception  # type: ignore[assignment]
            if isinstance(error, OperationalError | DBAPIError):
                return _database(error)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "server_error", str(_TITLES[500]), str(_MESSAGES[500]))
