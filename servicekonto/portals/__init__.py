"""Portal operators and administrators: organisations, self-service, approvals."""

from __future__ import annotations

from flask import Flask


def init_portals(app: Flask) -> None:
    """The operator pages (``/operators``) and the administrator pages (``/admin``)."""
    from servicekonto.portals.admin import bp as admin_bp
    from servicekonto.portals.views import bp as operators_bp

    app.register_blueprint(operators_bp)
    app.register_blueprint(admin_bp)
