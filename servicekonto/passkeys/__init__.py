"""Passkeys (WebAuthn, py_webauthn) as a citizen's second factor: registration, names and removal
in the console, sign-in at the second-factor step (``factors.finish(..., amr="hwk")``)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the pages and the factor kind "passkey" (amr ``hwk``, RFC 8176)."""
    from servicekonto.passkeys.views import bp

    app.register_blueprint(bp)
