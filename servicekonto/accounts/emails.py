"""E-mail address validation and normalisation (email-validator, no DNS look-ups)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


class InvalidEmail(ValueError):
    pass


def normalize_email(address: str) -> str:
    """Syntax-check ``address`` and return it normalised (domain lower-cased, IDNA, local part
    lower-cased: mail providers treat it case-insensitively in practice and citizens mistype)."""
    try:
        result = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    local, _, domain = result.normalized.rpartition("@")
    return f"{local.lower()}@{domain.lower()}"
