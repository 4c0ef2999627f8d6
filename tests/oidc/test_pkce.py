"""PKCE policy: S256 only (RFC 7636 appendix B vector), required for public clients."""

from __future__ import annotations

from oidc import pkce

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_rfc_vector() -> None:
    assert pkce.s256(VERIFIER) == CHALLENGE
    assert pkce.verify(VERIFIER, CHALLENGE)
    assert not pkce.verify(VERIFIER[:-1] + "A", CHALLENGE)
    assert not pkce.verify("short", CHALLENGE) and not pkce.verify(None, CHALLENGE)


def test_policy() -> None:
    assert pkce.check_challenge(CHALLENGE, "S256", public=True) is None
    assert pkce.check_challenge(None, None, public=False) is None
    assert pkce.check_challenge(None, None, public=True)
    assert pkce.check_challenge(CHALLENGE, "plain", public=False)
    assert pkce.check_challenge(CHALLENGE, None, public=False)  # plain by default: refused
    assert pkce.check_challenge("x" * 10, "S256", public=False)
    assert pkce.check_challenge(None, "S256", public=False)
