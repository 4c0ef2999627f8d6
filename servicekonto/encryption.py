"""Encryption at rest under the key-encryption key (setting ``key_encryption_key``):
AES-256-GCM for the provider's signing keys (``oidc/keys.py``) and second-factor seeds.

Format: ``v1.<nonce>.<ciphertext+tag>`` in urlsafe base64. The *associated data* binds a
ciphertext to its owner (a key's ``kid``, ``operator:17``), so a ciphertext copied to another
row does not decrypt.

Example::

    stored = encrypt_secret(settings["key_encryption_key"], "operator:17", b"JBSWY3DP...")
    decrypt_secret(settings["key_encryption_key"], "operator:17", stored)
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_FORMAT = "v1"


class SecretDecryptionError(Exception):
    """Wrong or malformed key-encryption key, wrong owner, or a malformed ciphertext."""


class InvalidKeyEncryptionKey(SecretDecryptionError):
    """The configured key-encryption key is not 32 bytes of urlsafe base64."""


def _b64d(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _b64e(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def _aead(kek: str) -> AESGCM:
    try:
        raw = _b64d((kek or "").strip())
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise InvalidKeyEncryptionKey(
            "key_encryption_key must be 32 random bytes in urlsafe base64 (44 characters), e.g. "
            "python3 -c \"import secrets, base64; "
            "print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())\"")
    return AESGCM(raw)


def encrypt_secret(kek: str, owner: str, plaintext: bytes) -> str:
    """Encrypt ``plaintext`` for ``owner`` (associated data)."""
    nonce = os.urandom(12)
    sealed = _aead(kek).encrypt(nonce, plaintext, owner.encode())
    return f"{_FORMAT}.{_b64e(nonce)}.{_b64e(sealed)}"


def decrypt_secret(kek: str, owner: str, stored: str) -> bytes:
    """Inverse of :func:`encrypt_secret`; raises :class:`SecretDecryptionError`."""
    aead = _aead(kek)
    try:
        version, nonce, sealed = stored.split(".")
        if version != _FORMAT:
            raise ValueError(version)
        return aead.decrypt(_b64d(nonce), _b64d(sealed), owner.encode())
    except InvalidTag:
        raise SecretDecryptionError(f"cannot decrypt the secret of {owner}: wrong "
                                    "key_encryption_key or a ciphertext of another owner") from None
    except (ValueError, binascii.Error, AttributeError):
        raise SecretDecryptionError(f"the stored secret of {owner} is malformed") from None
