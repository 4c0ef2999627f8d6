"""Subject identifiers (OpenID Connect Core 1.0, section 8).

* **pairwise** (the default): ``sub = b64url(HMAC-SHA256(pairwise_salt, sector || 0x00 || user
  id))``. Portals of one *sector* (the host of the redirect URIs, or of a validated
  ``sector_identifier_uri``) see the same ``sub`` for a citizen; portals of different sectors
  cannot correlate them. Changing ``pairwise_salt`` changes every pairwise sub: never do it.
* **public** (only where an operator justifies it): one stable identifier per citizen for all
  portals, also derived with the salt (so it does not reveal the internal, sequential user id).

Example::

    subject_for(client, user.id)   # "kqX3...": 43 characters, stable per sector and citizen
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from flask import current_app

#: Pseudo-sector of public subject identifiers (not a host name, so it never collides).
PUBLIC_SECTOR = "public:"
SECTOR_DOCUMENT_TIMEOUT_SECONDS = 5
SECTOR_DOCUMENT_MAX_BYTES = 64 * 1024


class SectorIdentifierError(ValueError):
    """The sector_identifier_uri is unusable; the message says why (for the operator)."""


def _salt() -> bytes:
    settings = current_app.config["SERVICEKONTO"]
    salt = settings["pairwise_salt"]
    if not salt:  # create_app fills it outside production; production refuses to start
        raise RuntimeError("pairwise_salt is not configured")
    return salt.encode()


def _host(uri: str) -> str:
    host = urlsplit(uri).hostname or ""
    return host.lower()


def sector_from(redirect_uris: Iterable[str], sector_identifier_uri: str | None = None) -> str:
    """The sector a client's pairwise subjects are computed for (stored on the client).

    The host of ``sector_identifier_uri`` when given, else the (single) host of the redirect
    URIs. Several redirect hosts without a sector document are ambiguous (OIDC Core 8.1):
    ``SectorIdentifierError``.
    """
    if sector_identifier_uri:
        host = _host(sector_identifier_uri)
        if not host:
            raise SectorIdentifierError("sector_identifier_uri has no host")
        return host
    hosts = list(dict.fromkeys(_host(u) for u in redirect_uris if _host(u)))
    if not hosts:
        raise SectorIdentifierError("no redirect URI host to derive the sector from")
    if len(hosts) > 1:
        raise SectorIdentifierError(
            "redirect URIs on several hosts (" + ", ".join(hosts) + ") need a "
            "sector_identifier_uri listing them all")
    return hosts[0]


def sector_of(client: Any) -> str:
    """The client's sector: its stored ``sector_identifier``, else derived from its URIs."""
    if getattr(client, "sector_identifier", None):
        return client.sector_identifier
    return sector_from(client.redirect_uris or [], client.sector_identifier_uri)


def pairwise_subject(sector: str, user_id: int | str) -> str:
    digest = hmac.new(_salt(), f"{sector}\x00{user_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def subject_for(client: Any, user_id: int | str) -> str:
    """The ``sub`` that ``client`` gets for the citizen ``user_id``."""
    if getattr(client, "subject_type", "pairwise") == "public":
        return pairwise_subject(PUBLIC_SECTOR, user_id)
    return pairwise_subject(sector_of(client), user_id)


# -- sector_identifier_uri (OIDC Core 8.1, Registration 2) -------------------------------------

def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_fetchable_uri(uri: str, *, allow_loopback_http: bool) -> None:
    """https, or http on a loopback host when allowed (development and tests)."""
    parts = urlsplit(uri)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and allow_loopback_http and _is_loopback(parts.hostname or ""):
        return
    raise SectorIdentifierError(f"{uri!r} must be an https URL")


def validate_sector_identifier(uri: str, redirect_uris: Sequence[str], *,
                               allow_loopback_http: bool | None = None,
                               timeout: float = SECTOR_DOCUMENT_TIMEOUT_SECONDS) -> str:
    """Fetch the JSON array at ``uri`` and check that it lists every redirect URI.

    Returns the sector (the host of ``uri``); raises :class:`SectorIdentifierError`.
    """
    import requests

    if allow_loopback_http is None:
        allow_loopback_http = current_app.config["SERVICEKONTO"]["allow_loopback_http"]
    check_fetchable_uri(uri, allow_loopback_http=allow_loopback_http)
    if urlsplit(uri).fragment:
        raise SectorIdentifierError("sector_identifier_uri must not contain a fragment")
    try:
        with requests.get(uri, timeout=timeout, allow_redirects=False, stream=True,
                          headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise SectorIdentifierError(
                    f"sector_identifier_uri answered HTTP {response.status_code}")
            body = response.raw.read(SECTOR_DOCUMENT_MAX_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise SectorIdentifierError(
            f"sector_identifier_uri could not be fetched: {type(exc).__name__}") from None
    if len(body) > SECTOR_DOCUMENT_MAX_BYTES:
        raise SectorIdentifierError("sector_identifier_uri document is too large")
    try:
        listed = json.loads(body)
    except ValueError:
        raise SectorIdentifierError("sector_identifier_uri is not a JSON document") from None
    if not isinstance(listed, list) or not all(isinstance(u, str) for u in listed):
        raise SectorIdentifierError("sector_identifier_uri must hold a JSON array of URIs")
    missing = [u for u in redirect_uris if u not in set(listed)]
    if missing:
        raise SectorIdentifierError(
            "sector_identifier_uri does not list the redirect URIs: " + ", ".join(missing))
    return _host(uri)
