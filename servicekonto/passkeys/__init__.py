"""Passkeys (WebAuthn, py_webauthn) as a citizen's second factor: registration, names and removal
in the console, sign-in at the second-factor step (``factors.finish(..., amr="hwk")``)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the pages and the factor kind "passkey" (amr ``hwk``, RFC 8176)."""
    from flask_babel import lazy_gettext as _l

    from servicekonto.mfa import factors
    from servicekonto.passkeys import service
    from servicekonto.passkeys.forms import CredentialForm
    from servicekonto.passkeys.views import bp

    factors.register(factors.FactorKind(
        name="passkey", amr="hwk", label=_l("Passkey"), count=service.count,
        login_template="passkeys/_login.html", console_template="passkeys/_console.html",
        login_form=CredentialForm, export=service.export, remove_all=service.remove_all,
        count_select=service.count_select))
    app.register_blueprint(bp)
