"""PKCE (RFC 7636), S256 only.

``plain`` is refused: it protects nothing against an attacker who can read the authorization
request. A challenge is required for public clients (``token_endpoint_auth_method = none``) and
accepted from every client; a code issued with a challenge is only redeemed with its verifier.

Example::

    problem = check_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "S256", public=True)
    assert problem is None
    assert verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", challenge)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

METHODS = ("S256",)

#: 43..128 characters of [A-Z a-z 0-9 - . _ ~] (RFC 7636 section 4.1); an S256 challenge is
#: always 43 characters of base64url.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def check_challenge(challenge: str | None, method: str | None, *, public: bool) -> str | None:
    """None when acceptable, else the ``invalid_request`` description."""
    if not challenge:
        if method:
            return "code_challenge_method without code_challenge."
        if public:
            return "PKCE is required for public clients: send code_challenge (S256)."
        return None
    if not method:
        # RFC 7636 makes "plain" the default method; it is not supported here.
        return "code_challenge_method is required and must be S256."
    if method not in METHODS:
        return "Unsupported code_challenge_method; only S256 is supported."
    if not _CHALLENGE.match(challenge):
        return "Invalid code_challenge."
    return None


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify(verifier: str | None, challenge: str) -> bool:
    """True when ``verifier`` matches the stored S256 ``challenge``."""
    if not verifier or not _VERIFIER.match(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)
