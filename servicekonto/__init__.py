"""Servicekonto: the citizen account every e-government portal trusts.

``create_app(overrides)`` builds the app: settings > extensions > blueprints > error handlers.
Nothing is read from the configuration at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, session
from flask_babel import Babel
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from servicekonto.settings import ensure_secret_key, load_settings
from servicekonto.web import ServicekontoFlask, browser_only_hooks, init_protocol_routes

PACKAGE_DIR = Path(__file__).resolve().parent


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    settings = load_settings(overrides)
    app = ServicekontoFlask(__name__, instance_path=settings["instance_path"])
    _configure(app, settings)

    from servicekonto.logging_setup import configure_logging

    configure_logging(settings["log_level"], settings["log_format"])

    if settings["trusted_proxies"]:
        n = settings["trusted_proxies"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)  # type: ignore[method-assign]

    _init_database(app, settings)
    _init_sessions(app, settings)
    _init_extensions(app, settings)

    from servicekonto.errors import register_error_handlers
    from servicekonto.health import init_health
    from servicekonto.metrics import init_metrics
    from servicekonto.web import init_web

    init_web(app)
    init_metrics(app)
    init_health(app)
    register_error_handlers(app)
    _register_blueprints(app)
    init_protocol_routes(app)
    return app


def _configure(app: Flask, settings: dict[str, Any]) -> None:
    app.config["SERVICEKONTO"] = settings
    app.config.update(
        SECRET_KEY=ensure_secret_key(settings),
        DEBUG=settings["debug"],
        TESTING=settings["env"] == "testing",
        SESSION_COOKIE_NAME=settings["session_cookie_name"],
        SESSION_COOKIE_SECURE=settings["session_cookie_secure"],
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=1024 * 1024,
        MAX_FORM_MEMORY_SIZE=256 * 1024,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the (server-side) session
        WTF_CSRF_SSL_STRICT=True,
        BABEL_DEFAULT_LOCALE=settings["locales"][0],
        BABEL_TRANSLATION_DIRECTORIES=";".join(_translation_directories()),
        PREFERRED_URL_SCHEME="https" if settings["issuer"].startswith("https") else "http",
    )


def _translation_directories() -> list[str]:
    """Each area keeps its own catalogue (``<package>/translations``); Flask-Babel merges them."""
    roots = [PACKAGE_DIR, PACKAGE_DIR.parent / "oidc"]
    found = []
    for root in roots:
        found.extend(str(p) for p in sorted(root.rglob("translations")) if p.is_dir())
    return found


def _init_database(app: Flask, settings: dict[str, Any]) -> None:
    from servicekonto import models  # noqa: F401 - registers every table on Base.metadata
    from servicekonto.audit.service import install_sealing
    from servicekonto.db import Database

    database = Database()
    database.init_app(app, settings)

    app.extensions["servicekonto.audit_sealer"] = install_sealing(
        database._factory, database.engine, settings)

    app.extensions["servicekonto.redis"] = None
    app.extensions["servicekonto.redis_guard"] = None
    if settings["redis_url"]:
        import redis

        from servicekonto.health import RedisGuard

        client = redis.Redis.from_url(settings["redis_url"], socket_timeout=2,
                                      socket_connect_timeout=2)
        app.extensions["servicekonto.redis"] = client
        # Redis down: the reduced mode of servicekonto/health.py (one warning per change).
        app.extensions["servicekonto.redis_guard"] = RedisGuard(client)


def _init_sessions(app: Flask, settings: dict[str, Any]) -> None:
    from servicekonto.accounts.trust_levels import session_limits
    from servicekonto.sessions.interface import ServerSideSessionInterface
    from servicekonto.sessions.stores import (
        DatabaseSessionStore,
        FallbackSessionStore,
        RedisSessionStore,
    )

    client = app.extensions["servicekonto.redis"]
    database = app.extensions["servicekonto.db"]
    database_store = DatabaseSessionStore(database.engine, reader=database.reader)
    store: Any = database_store
    if client is not None:
        store = FallbackSessionStore(RedisSessionStore(client), database_store,
                                     app.extensions["servicekonto.redis_guard"])
    app.extensions["servicekonto.session_store"] = store
    app.session_interface = ServerSideSessionInterface(store, session_limits(settings),
                                                       audit_writer=database_store.write_audit)

    @app.before_request
    def _session_store_down() -> None:
        if getattr(session, "unavailable", False):  # never for a protocol request's session
            from servicekonto.errors import ServiceUnavailable

            raise ServiceUnavailable()


def _init_extensions(app: Flask, settings: dict[str, Any]) -> None:
    from servicekonto.throttle import Throttle
    from servicekonto.web import select_locale

    with browser_only_hooks(app):  # the protocol endpoints' POST views are CSRF-exempt
        CSRFProtect(app)
    Babel(app, locale_selector=select_locale)
    app.extensions["servicekonto.throttle"] = Throttle(
        settings["redis_url"] or "memory://", app.extensions["servicekonto.redis_guard"])

    login_manager = LoginManager()
    login_manager.session_protection = None  # sessions are server-side and rotated on login
    login_manager.login_view = "accounts.login"
    login_manager.login_message = None
    with browser_only_hooks(app):  # the remember-cookie hook: nothing to do without a session
        login_manager.init_app(app)

    @login_manager.unauthorized_handler
    def _unauthorized() -> Any:
        """To the login page, back here afterwards; say so when the old session ran out."""
        from flask import redirect, request, url_for

        args: dict[str, Any] = {}
        if request.method == "GET":
            args["next"] = request.full_path.rstrip("?")
        if getattr(session, "expired", False):
            args["expired"] = "1"
        return redirect(url_for("accounts.login", **args))

    @login_manager.user_loader
    def _load_user(user_id: str) -> Any:
        from servicekonto.accounts.models import User
        from servicekonto.db import db

        try:
            key = int(user_id)
        except ValueError:
            return None
        user = db.session.get(User, key)
        return user if user is not None and not user.is_disabled else None


def _register_blueprints(app: Flask) -> None:
    from oidc import init_oidc
    from servicekonto.accounts.views import bp as accounts_bp
    from servicekonto.console.views import bp as console_bp
    from servicekonto.mfa import init_mfa
    from servicekonto.passkeys import init_app as init_passkeys
    from servicekonto.portals import init_portals
    from servicekonto.views import bp as main_bp

    app.register_blueprint(main_bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(console_bp)
    init_mfa(app)
    init_oidc(app)
    init_portals(app)
    init_passkeys(app)
