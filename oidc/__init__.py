"""The OpenID Connect provider. Authlib stays inside this package."""

from __future__ import annotations

from flask import Flask


def init_oidc(app: Flask) -> None:
    """Attach the provider's endpoints to ``app`` (filled in by the provider issue)."""
