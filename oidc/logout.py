"""RP-initiated logout and OIDC Back-Channel Logout 1.0 (to be implemented)."""

from __future__ import annotations

from typing import Any

from flask import Flask


def register(app: Flask, server: Any) -> None:
    """Attach the end-session endpoint and back-channel logout delivery to ``app``."""
