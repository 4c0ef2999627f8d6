"""E-mail address validation and normalisation (email-validator, no DNS look-ups)."""

from __future__ import annotations

import re

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


#: A plain ASCII dot-atom address (RFC 5322 ``dot-atom`` local part, LDH domain labels, an
#: alphabetic top-level label): the shape nearly every address has, and one whose normalised
#: form is simply the address lower-cased (tests/accounts/test_emails.py compares the two).
_PLAIN_ADDRESS = re.compile(
    r"(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")


def lookup_form(address: str) -> str:
    """The normalised form of ``address`` for *finding* an account (the login): plain ASCII
    addresses are lower-cased directly (``normalize_email``'s full validation costs about as
    much as the rest of the login's form handling); everything else goes through
    ``normalize_email`` (raises ``InvalidEmail``). Never for storing an address: a plain one
    that the validator would refuse (e.g. a special-use domain such as ``.test``) is not
    refused here, and simply finds no account, as no account can have it."""
    stripped = address.strip()
    match = _PLAIN_ADDRESS.fullmatch(stripped)
    if (match is None or len(stripped) > 254 or len(match.group("local")) > 64
            or "xn--" in stripped.lower()):  # IDNA A-labels: the validator returns Unicode
        return normalize_email(address)
    return stripped.lower()
