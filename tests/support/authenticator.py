"""A software WebAuthn authenticator for HTTP tests: real ES256 keys (cryptography), attestation
"none" and signed assertions, in the JSON shape browsers (and static/passkeys.js) send.

The server verifies these with py_webauthn exactly as it verifies a browser's answer, so the
tests exercise the real checks (challenge, origin, RP ID hash, signature, counter).

Example::

    token = SoftAuthenticator("http://localhost")
    answer = token.create(options_json)       # navigator.credentials.create()
    answer = token.get(options_json)          # navigator.credentials.get()
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
AAGUID = bytes(16)  # "none" attestation: all zero


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Credential:
    id: bytes
    key: ec.EllipticCurvePrivateKey
    sign_count: int = 0


@dataclass
class SoftAuthenticator:
    origin: str
    user_verified: bool = True
    counts: bool = True  # authenticators without a counter always report 0
    credentials: list[Credential] = field(default_factory=list)

    @property
    def rp_id(self) -> str:
        return urlsplit(self.origin).hostname or ""

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge,
                           "origin": origin or self.origin, "crossOrigin": False}).encode()

    def _flags(self) -> int:
        return UP | (UV if self.user_verified else 0)

    def create(self, options: str | dict[str, Any], *, origin: str | None = None,
               rp_id: str | None = None, credential: Credential | None = None
               ) -> dict[str, Any]:
        """Answer registration options with a new ES256 credential (attestation "none"), or
        with ``credential`` again (what excludeCredentials is there to prevent)."""
        opts = json.loads(options) if isinstance(options, str) else options
        cred = credential or Credential(secrets.token_bytes(32),
                                        ec.generate_private_key(ec.SECP256R1()))
        if credential is None:
            self.credentials.append(cred)
        numbers = cred.key.public_key().public_numbers()
        cose = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})
        auth_data = (hashlib.sha256((rp_id or opts["rp"]["id"]).encode()).digest()
                     + bytes([self._flags() | AT]) + struct.pack(">I", cred.sign_count)
                     + AAGUID + struct.pack(">H", len(cred.id)) + cred.id + cose)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", opts["challenge"], origin)
        return {"id": b64url(cred.id), "rawId": b64url(cred.id), "type": "public-key",
                "clientExtensionResults": {}, "authenticatorAttachment": "platform",
                "response": {"clientDataJSON": b64url(client_data),
                             "attestationObject": b64url(attestation),
                             "transports": ["internal"]}}

    def get(self, options: str | dict[str, Any], *, credential: Credential | None = None,
            sign_count: int | None = None, origin: str | None = None,
            challenge: str | None = None) -> dict[str, Any]:
        """Answer authentication options with a signed assertion.

        ``sign_count`` forces the counter (a cloned authenticator reports an old value).
        """
        opts = json.loads(options) if isinstance(options, str) else options
        cred = credential or self._allowed(opts)
        if sign_count is not None:
            cred.sign_count = sign_count
        elif self.counts:
            cred.sign_count += 1
        auth_data = (hashlib.sha256(opts["rpId"].encode()).digest() + bytes([self._flags()])
                     + struct.pack(">I", cred.sign_count))
        client_data = self._client_data("webauthn.get", challenge or opts["challenge"], origin)
        signature = cred.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        return {"id": b64url(cred.id), "rawId": b64url(cred.id), "type": "public-key",
                "clientExtensionResults": {}, "authenticatorAttachment": "platform",
                "response": {"clientDataJSON": b64url(client_data),
                             "authenticatorData": b64url(auth_data),
                             "signature": b64url(signature), "userHandle": None}}

    def _allowed(self, opts: dict[str, Any]) -> Credential:
        allowed = {item["id"] for item in opts.get("allowCredentials") or []}
        for cred in self.credentials:
            if not allowed or b64url(cred.id) in allowed:
                return cred
        raise AssertionError("this authenticator holds none of the allowed credentials")
