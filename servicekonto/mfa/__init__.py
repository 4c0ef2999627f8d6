"""Second factors: TOTP (RFC 6238), recovery codes, the factor contract and the step-up.

* ``totp``, ``stored``: TOTP and its encrypted seed, shared by operators (``servicekonto.portals``)
  and citizens;
* ``factors``: the contract every citizen factor kind (TOTP here, passkeys) registers with;
* ``services``, ``views``: citizen TOTP and recovery codes, the second-factor sign-in page and
  the console's security page.
"""

from __future__ import annotations

from flask import Flask


def init_mfa(app: Flask) -> None:
    """Register the TOTP kind and the pages (``/login/second-factor``, ``/account/security``)."""
    from servicekonto.mfa import factors, services
    from servicekonto.mfa.views import bp

    factors.register(services.totp_kind())
    app.register_blueprint(bp)
