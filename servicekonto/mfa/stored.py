"""A TOTP seed stored encrypted on a row, shared by operators and citizens.

Any row with the attributes ``totp_secret_encrypted`` (``v1.…`` ciphertext, see
``servicekonto.encryption``) and ``totp_last_step`` works; ``owner`` binds the ciphertext to
that row (``operator:17``, ``citizen-totp:42``) so a copied ciphertext does not decrypt.

Example::

    secret = ensure_secret(operator, "operator:17")    # new one unless waiting for confirmation
    if check_code(operator, "operator:17", "123456"):  # advances totp_last_step (no replay)
        ...
"""

from __future__ import annotations

from typing import Protocol

from servicekonto.encryption import decrypt_secret, encrypt_secret
from servicekonto.mfa import totp
from servicekonto.settings import current_settings


class HasTotpSeed(Protocol):
    totp_secret_encrypted: str | None
    totp_last_step: int | None


def _kek() -> str:
    return current_settings()["key_encryption_key"]


def load_secret(row: HasTotpSeed, owner: str) -> str | None:
    """The decrypted seed, or None when none was created yet."""
    if not row.totp_secret_encrypted:
        return None
    return decrypt_secret(_kek(), owner, row.totp_secret_encrypted).decode()


def ensure_secret(row: HasTotpSeed, owner: str) -> str:
    """The seed waiting for confirmation, or a new one (stored encrypted on ``row``)."""
    secret = load_secret(row, owner)
    if secret is None:
        secret = totp.new_secret()
        row.totp_secret_encrypted = encrypt_secret(_kek(), owner, secret.encode())
        row.totp_last_step = None
    return secret


def check_code(row: HasTotpSeed, owner: str, code: str | None) -> bool:
    """Check a code and remember its time step: the same (or an older) code is refused."""
    secret = load_secret(row, owner)
    if secret is None:
        return False
    step = totp.verify(secret, code, row.totp_last_step)
    if step is None:
        return False
    row.totp_last_step = step
    return True
