"""Request plumbing shared by every page: request ids, language choice, security headers, and
the thin path of the protocol endpoints.

Protocol endpoints (``PROTOCOL_ENDPOINTS``: token, userinfo, introspection, revocation,
discovery, JWKS) are called machine-to-machine and never use the browser machinery: the
server-side session, CSRF (their POST views are exempt; the others are GET), Flask-Login's
remember cookie, the back-channel commit hook. ``is_protocol_request()`` says whether the
current request is one; it is decided once per request (``protocol_request``) from the same URL
rules the request matches, and the session interface and every hook registered through
``browser_only_hooks`` skip their work for it. Request id, metrics, security headers and error
mapping run for every request.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, Request, Response, g, has_request_context, request, session
from flask_babel import get_locale

from servicekonto.settings import current_settings

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


#: Endpoints served on the thin path (see the module docstring). /authorize, end_session and
#: every HTML page are not among them.
PROTOCOL_ENDPOINTS = frozenset({
    "oidc.token",
    "oidc.userinfo",
    "oidc_session.introspection",
    "oidc_session.revocation",
    "oidc_discovery.configuration",
    "oidc_keys.jwks",
})

_ROUTES_KEY = "servicekonto.protocol_routes"
_MARK = "servicekonto.protocol_request"


def init_protocol_routes(app: Flask) -> None:
    """Index the protocol endpoints' rules by path -> methods (call after every blueprint).

    The session is opened before Flask matches the URL, so the marker cannot wait for
    ``request.endpoint``; these rules have no variables, so path and method decide exactly the
    same as the match does.
    """
    routes: dict[str, frozenset[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PROTOCOL_ENDPOINTS:
            if rule.arguments:
                raise ValueError(f"protocol endpoint {rule.endpoint} has URL variables")
            routes[rule.rule] = routes.get(rule.rule, frozenset()) | (rule.methods or set())
    app.extensions[_ROUTES_KEY] = routes


def protocol_request(app: Flask, req: Request) -> bool:
    """Whether ``req`` is for a protocol endpoint; decided on first use, kept in the environ."""
    environ = req.environ
    marked = environ.get(_MARK)
    if marked is None:
        methods = app.extensions.get(_ROUTES_KEY, {}).get(req.path)
        marked = environ[_MARK] = methods is not None and req.method in methods
    return marked


def is_protocol_request() -> bool:
    """Whether the current request is for a protocol endpoint (False outside a request)."""
    if not has_request_context():
        return False
    return _marked()


def _marked() -> bool:
    """The marker of the current request (set when its session was opened)."""
    req = request._get_current_object()  # type: ignore[attr-defined]
    marked = req.environ.get(_MARK)
    if marked is None:  # a session interface that does not mark (tests may swap it)
        from flask import current_app

        marked = protocol_request(current_app, req)
    return bool(marked)


@contextmanager
def browser_only_hooks(app: Flask) -> Iterator[None]:
    """Every app-wide before/after_request hook registered inside this block (ours or an
    extension's) is skipped for protocol requests.

    Put only hooks here that have nothing to do for them: the skip must not change a response.
    """
    before = list(app.before_request_funcs.get(None, ()))
    after = list(app.after_request_funcs.get(None, ()))
    yield
    funcs = app.before_request_funcs.get(None, [])
    funcs[:] = [f if f in before else _skip_before(f) for f in funcs]
    funcs = app.after_request_funcs.get(None, [])
    funcs[:] = [f if f in after else _skip_after(f) for f in funcs]


def _skip_before(hook: Callable[[], Any]) -> Callable[[], Any]:
    @functools.wraps(hook)
    def browser_only() -> Any:
        if _marked():
            return None
        return hook()

    browser_only.browser_only = True  # type: ignore[attr-defined]
    return browser_only


def _skip_after(hook: Callable[[Response], Response]) -> Callable[[Response], Response]:
    @functools.wraps(hook)
    def browser_only(response: Response) -> Response:
        if _marked():
            return response
        return hook(response)

    browser_only.browser_only = True  # type: ignore[attr-defined]
    return browser_only


class ServicekontoFlask(Flask):
    """Flask, with ``ensure_sync`` remembered per function: Flask asks
    ``inspect.iscoroutinefunction`` about every hook and the view on every request (eleven
    times for a protocol request), and the answer never changes for a registered function."""

    _SYNC_CACHE_LIMIT = 4096

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        cache: dict[Any, Callable[..., Any]] = self.__dict__.setdefault("_sync_cache", {})
        try:
            return cache[func]
        except KeyError:
            pass
        except TypeError:  # an unhashable callable
            return super().ensure_sync(func)
        result = super().ensure_sync(func)
        if len(cache) < self._SYNC_CACHE_LIMIT:
            cache[func] = result
        return result


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

    production = app.config["SERVICEKONTO"]["env"] == "production"  # fixed for the app's life

    defaults = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")]
    if production:
        defaults.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
    html = [("Content-Security-Policy", CONTENT_SECURITY_POLICY), ("X-Frame-Options", "DENY"),
            ("Cache-Control", "no-store")]

    @app.after_request
    def _headers(response: Response) -> Response:
        """Security headers a view did not set itself. One pass over the response's headers
        (``Headers.setdefault`` scans them once per header: a tenth of a JWKS response)."""
        headers = response.headers
        present = {key.lower() for key in headers.keys()}  # noqa: SIM118 - Headers, not dict
        wanted = [("X-Request-ID", g.get("request_id", "")), *defaults]
        if response.mimetype == "text/html":
            wanted += html
        for key, value in wanted:
            if key.lower() not in present:
                headers.add(key, value)
        return response
