"""TOTP (RFC 6238: SHA-1, 6 digits, 30 s) with replay protection, and the enrolment QR code.

``verify(secret, code, last_step)`` returns the time step the code belongs to (accepting one
step of clock drift either way) or None; the caller stores that step and passes it back as
``last_step`` next time, so a code (or an older one) is never accepted twice.

Example::

    secret = new_secret()
    uri = provisioning_uri(secret, "anna@musterstadt.de", issuer="Servicekonto")
    svg = qr_svg(uri)                      # server-side SVG, no JavaScript
    step = verify(secret, "123456", last_step=None)
"""

from __future__ import annotations

import base64
import hmac
import io
import time

import pyotp

DIGITS = 6
INTERVAL = 30
#: Steps accepted either side of now (clock drift of the authenticator app).
VALID_WINDOW = 1


def new_secret() -> str:
    """A random base32 secret of 160 bits (RFC 4226 recommends at least 128)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str, *, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).provisioning_uri(
        name=account, issuer_name=issuer)


def current_step(at: float | None = None) -> int:
    return int((time.time() if at is None else at) // INTERVAL)


def normalize_code(code: str | None) -> str:
    """Digits only: people type "123 456" or paste with spaces."""
    return "".join((code or "").split()).replace("-", "")


def verify(secret: str, code: str | None, last_step: int | None, *,
           at: float | None = None) -> int | None:
    """The matching time step when ``code`` is valid and newer than ``last_step``, else None."""
    code = normalize_code(code)
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
    now = current_step(at)
    for step in range(now - VALID_WINDOW, now + VALID_WINDOW + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def qr_svg(data: str) -> str:
    """The QR code of ``data`` as an SVG document (pure Python, no inline style)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=10,
                        border=4)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode()


def qr_data_uri(data: str) -> str:
    """The QR code as a ``data:`` URI for an ``<img>`` (allowed by the CSP's img-src)."""
    return "data:image/svg+xml;base64," + base64.b64encode(qr_svg(data).encode()).decode()
