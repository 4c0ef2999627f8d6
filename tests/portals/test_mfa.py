"""servicekonto.mfa: TOTP steps and replay, secrets bound to their owner and key."""

from __future__ import annotations

import base64
import os

import pyotp
import pytest

from servicekonto.encryption import SecretDecryptionError, decrypt_secret, encrypt_secret
from servicekonto.mfa import totp

KEK = base64.urlsafe_b64encode(os.urandom(32)).decode()


def test_secret_round_trip_bound_to_owner_and_key():
    stored = encrypt_secret(KEK, "operator:1", b"JBSWY3DPEHPK3PXP")
    assert b"JBSWY3DP" not in stored.encode()
    assert decrypt_secret(KEK, "operator:1", stored) == b"JBSWY3DPEHPK3PXP"
    with pytest.raises(SecretDecryptionError):
        decrypt_secret(KEK, "operator:2", stored)
    other = base64.urlsafe_b64encode(os.urandom(32)).decode()
    with pytest.raises(SecretDecryptionError):
        decrypt_secret(other, "operator:1", stored)
    with pytest.raises(SecretDecryptionError):
        decrypt_secret(KEK, "operator:1", "v1.garbage")
    with pytest.raises(SecretDecryptionError):
        encrypt_secret("too-short", "operator:1", b"x")


def test_totp_steps_drift_and_replay():
    secret = totp.new_secret()
    now = 1_790_000_000.0
    step = totp.current_step(now)
    code = pyotp.TOTP(secret).at(now)
    assert totp.verify(secret, code, None, at=now) == step
    assert totp.verify(secret, code, step, at=now) is None  # replay
    assert totp.verify(secret, code[:3] + " " + code[3:], None, at=now) == step
    assert totp.verify(secret, pyotp.TOTP(secret).at(now - 30), None, at=now) == step - 1
    assert totp.verify(secret, pyotp.TOTP(secret).at(now - 30), step, at=now) is None
    assert totp.verify(secret, pyotp.TOTP(secret).at(now - 90), None, at=now) is None
    assert totp.verify(secret, "12345", None, at=now) is None
    assert totp.verify(secret, "abcdef", None, at=now) is None


def test_qr_code_is_svg_without_inline_style():
    svg = totp.qr_svg(totp.provisioning_uri(totp.new_secret(), "anna@musterstadt.de",
                                            issuer="Servicekonto"))
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "style=" not in svg and "<script" not in svg
    assert totp.qr_data_uri("otpauth://totp/x").startswith("data:image/svg+xml;base64,")
