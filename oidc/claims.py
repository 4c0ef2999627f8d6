"""Claims: which scope asks for which claims, the ``claims`` request parameter, claim values.

* Scopes map to claims after OIDC Core 5.4, restricted to what a Servicekonto account holds
  (``SCOPE_CLAIMS``); claims the account does not hold (nickname, picture, ...) are never
  advertised or released.
* The ``claims`` parameter (OIDC Core 5.5) asks for individual claims in the ``userinfo`` and
  ``id_token`` members, each ``null`` (voluntary) or ``{"essential": true, "value"/"values"}``.
  Unknown claim names are ignored (5.5: "claims that are not understood MUST be ignored").
* Release: the ID token carries only the claims its ``id_token`` member asked for; userinfo the
  scope claims plus the ``userinfo`` member. Both are cut to what the citizen consented to
  and to the portal's ``allowed_claims`` (set by an administrator; None = its scopes' claims).

Example::

    request = parse_claims_request('{"id_token": {"birthdate": {"essential": true}}}')
    consent_claims("openid email", request)   # {"email", "email_verified", "birthdate"}
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flask_babel import lazy_gettext as _l

from servicekonto.accounts.models import User

SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "given_name", "family_name", "birthdate", "locale", "updated_at"),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
}
SCOPES_SUPPORTED = ("openid", "profile", "email", "address", "phone", "offline_access")
USER_CLAIMS = frozenset(c for claims in SCOPE_CLAIMS.values() for c in claims)
#: Claims about the authentication itself (no personal data; never need consent).
PROTOCOL_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp",
                   "sid", "at_hash")
CLAIMS_SUPPORTED = (*PROTOCOL_CLAIMS, *sorted(USER_CLAIMS))
MEMBERS = ("userinfo", "id_token")


class ClaimsRequestError(ValueError):
    """The ``claims`` parameter is not valid JSON of the right shape (-> invalid_request)."""


def parse_claims_request(raw: str | None) -> dict[str, dict[str, Any]] | None:
    """Parse and check the ``claims`` parameter; keep only the two known members."""
    if raw is None or raw == "":
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        raise ClaimsRequestError("The claims parameter is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ClaimsRequestError("The claims parameter must be a JSON object.")
    parsed: dict[str, dict[str, Any]] = {}
    for member in MEMBERS:
        entries = data.get(member)
        if entries is None:
            continue
        if not isinstance(entries, dict):
            raise ClaimsRequestError(f"claims.{member} must be a JSON object.")
        for name, spec in entries.items():
            if spec is not None and not isinstance(spec, dict):
                raise ClaimsRequestError(f"claims.{member}.{name} must be null or an object.")
            if isinstance(spec, dict):
                if "essential" in spec and not isinstance(spec["essential"], bool):
                    raise ClaimsRequestError(f"claims.{member}.{name}.essential must be boolean.")
                if "values" in spec and not isinstance(spec["values"], list):
                    raise ClaimsRequestError(f"claims.{member}.{name}.values must be an array.")
        parsed[member] = entries
    return parsed or None


def restrict_to_scopes(claims_request: dict[str, Any] | None,
                       allowed_scopes: str) -> dict[str, Any] | None:
    """Drop user claims the portal's registered scopes do not cover ("only as far as the
    portal's registration allows"); protocol claims such as ``acr`` stay."""
    if not claims_request:
        return claims_request
    allowed = scope_claims(allowed_scopes)
    out = {member: {name: spec for name, spec in entries.items()
                    if name not in USER_CLAIMS or name in allowed}
           for member, entries in claims_request.items()}
    return {member: entries for member, entries in out.items() if entries} or None


def member_claims(claims_request: dict[str, Any] | None, member: str) -> set[str]:
    """User claims named in one member of the claims request (unknown names dropped)."""
    if not claims_request:
        return set()
    return set(claims_request.get(member) or {}) & USER_CLAIMS


def scope_claims(scope: str | list[str] | set[str]) -> set[str]:
    scopes = scope.split() if isinstance(scope, str) else scope
    return {claim for s in scopes for claim in SCOPE_CLAIMS.get(s, ())}


def permitted(claims: set[str], allowed: Iterable[str] | None) -> set[str]:
    """``claims`` cut to a portal's ``allowed_claims`` (None: every claim of its scopes).

    An administrator approves single claims for a portal (purpose and legal basis per claim);
    what is not approved is never asked for, shown on the consent page or released.
    """
    return set(claims) if allowed is None else set(claims) & set(allowed)


def consent_claims(scope: str, claims_request: dict[str, Any] | None,
                   allowed: Iterable[str] | None = None) -> set[str]:
    """Every user claim the request could release (needs the citizen's consent)."""
    return permitted(scope_claims(scope) | member_claims(claims_request, "userinfo")
                     | member_claims(claims_request, "id_token"), allowed)


def userinfo_claims(scope: str, claims_request: dict[str, Any] | None,
                    granted: set[str] | list[str],
                    allowed: Iterable[str] | None = None) -> list[str]:
    return sorted(permitted(scope_claims(scope) | member_claims(claims_request, "userinfo"),
                            allowed) & set(granted))


def id_token_claims(claims_request: dict[str, Any] | None,
                    granted: set[str] | list[str],
                    allowed: Iterable[str] | None = None) -> list[str]:
    return sorted(permitted(member_claims(claims_request, "id_token"), allowed)
                  & set(granted))


def requested_acr(claims_request: dict[str, Any] | None) -> tuple[list[str], bool]:
    """The ``acr`` values asked for in ``claims.id_token.acr`` and whether they are essential."""
    spec = ((claims_request or {}).get("id_token") or {}).get("acr")
    if not isinstance(spec, dict):
        return [], False
    values = spec.get("values") or ([spec["value"]] if "value" in spec else [])
    return [str(v) for v in values], bool(spec.get("essential"))


def claim_values(user: User, names: list[str] | set[str]) -> dict[str, Any]:
    """Values for ``names`` from the account; claims without a value are left out."""
    out: dict[str, Any] = {}
    for name in names:
        value = _value(user, name)
        if value is not None and value != "":
            out[name] = value
    return out


def _value(user: User, name: str) -> Any:
    if name == "name":
        return user.full_name
    if name in ("given_name", "family_name", "email", "phone_number", "locale"):
        return getattr(user, name)
    if name == "birthdate":
        return user.birthdate.isoformat() if user.birthdate else None
    if name == "updated_at":
        return int(user.updated_at.timestamp()) if user.updated_at else None
    if name == "email_verified":
        return user.is_verified
    if name == "phone_number_verified":
        return False if user.phone_number else None  # numbers are not verified here
    if name == "address":
        parts = {"street_address": user.street_address, "postal_code": user.postal_code,
                 "locality": user.locality, "country": user.country}
        parts = {k: v for k, v in parts.items() if v}
        if not parts:
            return None
        line2 = " ".join(p for p in (user.postal_code, user.locality) if p)
        parts["formatted"] = "\n".join(p for p in (user.street_address, line2, user.country)
                                       if p)
        return parts
    return None


_LABELS = {
    "given_name": _l("First name"),
    "family_name": _l("Last name"),
    "birthdate": _l("Date of birth"),
    "email": _l("E-mail address"),
    "address": _l("Postal address"),
    "phone_number": _l("Telephone number"),
    "locale": _l("Preferred language"),
    "updated_at": _l("When your data was last changed"),
}
_FULL_NAME = _l("First and last name")
_OFFLINE = _l("Access while you are not signed in (until you withdraw your consent)")


def consent_labels(claims: set[str], scopes: set[str]) -> list[str]:
    """Plain-language labels for the consent page, one per piece of data, in a fixed order."""
    labels: list[str] = []
    names = set(claims)
    if "name" in names or {"given_name", "family_name"} <= names:
        labels.append(str(_FULL_NAME))
        names -= {"name", "given_name", "family_name"}
    if "email_verified" in names:
        names.add("email")
    if "phone_number_verified" in names:
        names.add("phone_number")
    for claim in ("given_name", "family_name", "birthdate", "email", "address", "phone_number",
                  "locale", "updated_at"):
        if claim in names:
            labels.append(str(_LABELS[claim]))
    if "offline_access" in scopes:
        labels.append(str(_OFFLINE))
    return labels
