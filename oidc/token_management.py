"""Token revocation (RFC 7009) and introspection (RFC 7662) (to be implemented)."""

from __future__ import annotations

from typing import Any

from flask import Flask


def register(app: Flask, server: Any) -> None:
    """Register the revocation and introspection endpoints on ``server`` and their routes."""
