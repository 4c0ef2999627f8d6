"""Organisations, operator accounts, portal self-service and data-access requests.

Every function adds to the caller's session and audits there; the caller commits. Rules:

* Operators need a second factor: the TOTP secret is stored encrypted (``servicekonto.mfa``)
  and only counts once confirmed with a code (``totp_confirmed_at``).
* A portal registered by an operator starts *pending* (``registered_via="portal"``) and belongs
  to the operator's organisation; an administrator approves it.
* Four eyes: a data-access request is decided by an administrator who did not request it.
  Approving adds the claim to ``client.allowed_claims`` and its scope to ``client.scope``.

Example::

    org = create_organisation(session, "Stadt Musterstadt", actor="cli")
    op = create_operator(session, email="anna@musterstadt.de", name="Anna", organisation=org,
                         password="...", actor="cli")
    session.commit()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from oidc.claims import SCOPE_CLAIMS
from oidc.clients import (
    approve_client,
    create_client,
    delete_client,
    set_status,
    update_client,
)
from oidc.models import Client, ClientStatus
from servicekonto.accounts import passwords
from servicekonto.accounts.emails import InvalidEmail, normalize_email
from servicekonto.audit import AuditTag, record
from servicekonto.db import utcnow
from servicekonto.mfa import stored
from servicekonto.portals.models import (
    DataAccessRequest,
    Operator,
    OperatorRole,
    Organisation,
    RequestStatus,
)

#: Claims an operator may ask for, in a stable order (scope order of SCOPE_CLAIMS).
REQUESTABLE_CLAIMS: tuple[str, ...] = tuple(
    dict.fromkeys(c for claims in SCOPE_CLAIMS.values() for c in claims))
PURPOSE_MAX = 2000
LEGAL_BASIS_MAX = 500
NOTE_MAX = 2000


class PortalError(Exception):
    """A rule of this module was broken; ``str()`` is a message for people."""


class NotFound(PortalError):
    pass


class FourEyesViolation(PortalError):
    """The operator who requested something may not decide it."""


class AlreadyDecided(PortalError):
    pass


def actor_of(operator: Operator) -> str:
    return f"operator:{operator.id}"


def _settings() -> dict[str, Any]:
    return current_app.config["SERVICEKONTO"]


# -- organisations ------------------------------------------------------------------------------

def create_organisation(session: Session, name: str, *, actor: str) -> Organisation:
    name = " ".join((name or "").split())
    if not name:
        raise PortalError("an organisation needs a name")
    if len(name) > 200:
        raise PortalError("organisation names are limited to 200 characters")
    if session.scalar(select(Organisation).where(func.lower(Organisation.name) == name.lower())):
        raise PortalError(f"an organisation named {name!r} exists already")
    org = Organisation(name=name)
    session.add(org)
    session.flush()
    record(session, AuditTag.ORGANISATION_CREATED, actor=actor,
           details={"organisation_id": org.id, "name": name})
    return org


def list_organisations(session: Session) -> list[Organisation]:
    return list(session.scalars(select(Organisation).order_by(Organisation.name)))


def find_organisation(session: Session, key: str | int) -> Organisation | None:
    """By id (digits) or exact name."""
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        return session.get(Organisation, int(key))
    return session.scalar(select(Organisation).where(Organisation.name == key))


# -- operators ----------------------------------------------------------------------------------

def create_operator(session: Session, *, email: str, name: str,
                    organisation: Organisation | None, password: str, admin: bool = False,
                    actor: str) -> Operator:
    try:
        email = normalize_email(email)
    except InvalidEmail as exc:
        raise PortalError(f"not a valid e-mail address: {exc}") from None
    name = " ".join((name or "").split())
    if not name or len(name) > 200:
        raise PortalError("a name of 1 to 200 characters is required")
    if organisation is None and not admin:
        raise PortalError("an operator belongs to an organisation (administrators may not)")
    if session.scalar(select(Operator).where(Operator.email == email)):
        raise PortalError(f"an operator with {email} exists already")
    problems = passwords.password_problems(password, email=email, names=(name,))
    if problems:
        raise PortalError(" ".join(problems))
    operator = Operator(email=email, name=name, organisation=organisation,
                        password_hash=passwords.hash_password(password),
                        role=OperatorRole.ADMIN if admin else OperatorRole.OPERATOR)
    session.add(operator)
    session.flush()
    record(session, AuditTag.OPERATOR_CREATED, actor=actor,
           details={"operator_id": operator.id, "role": operator.role,
                    "organisation_id": organisation.id if organisation else None})
    return operator


def find_operator(session: Session, email: str) -> Operator | None:
    try:
        email = normalize_email(email)
    except InvalidEmail:
        return None
    return session.scalar(select(Operator).where(Operator.email == email))


def list_operators(session: Session) -> list[Operator]:
    return list(session.scalars(select(Operator).order_by(Operator.email)))


def disable_operator(session: Session, operator: Operator, *, actor: str) -> None:
    if operator.disabled_at is None:
        operator.disabled_at = utcnow()
        record(session, AuditTag.OPERATOR_DISABLED, actor=actor,
               details={"operator_id": operator.id})
        session.flush()


def reset_totp(session: Session, operator: Operator, *, actor: str) -> None:
    """Forget the second factor: the next login enrols a new one."""
    operator.totp_secret_encrypted = None
    operator.totp_confirmed_at = None
    operator.totp_last_step = None
    record(session, AuditTag.OPERATOR_TOTP_RESET, actor=actor,
           details={"operator_id": operator.id})
    session.flush()


def _owner(operator: Operator) -> str:
    return f"operator:{operator.id}"


def totp_secret(operator: Operator) -> str | None:
    """The operator's TOTP secret (decrypted), or None before enrolment started."""
    return stored.load_secret(operator, _owner(operator))


def start_enrolment(operator: Operator) -> str:
    """The secret to enrol (a new one unless an unconfirmed one is waiting)."""
    if operator.totp_confirmed_at is not None:
        raise PortalError("TOTP is enrolled already")
    return stored.ensure_secret(operator, _owner(operator))


def check_totp(operator: Operator, code: str) -> bool:
    """Check a code and remember its step (a replayed or older code is refused)."""
    return stored.check_code(operator, _owner(operator), code)


def confirm_enrolment(session: Session, operator: Operator, code: str) -> bool:
    if not check_totp(operator, code):
        return False
    operator.totp_confirmed_at = utcnow()
    record(session, AuditTag.OPERATOR_TOTP_ENROLLED, actor=actor_of(operator),
           details={"operator_id": operator.id})
    return True


# -- portals ------------------------------------------------------------------------------------

def portals_of(session: Session, organisation_id: int | None) -> list[Client]:
    if organisation_id is None:
        return []
    return list(session.scalars(select(Client).where(Client.organisation_id == organisation_id)
                                .order_by(Client.client_name)))


def list_clients(session: Session, status: str | None = None) -> list[Client]:
    stmt = select(Client).order_by(Client.created_at.desc(), Client.id.desc())
    if status:
        stmt = stmt.where(Client.status == status)
    return list(session.scalars(stmt))


def register_portal(session: Session, operator: Operator, *, name: str,
                    redirect_uris: Sequence[str], post_logout_redirect_uris: Sequence[str],
                    backchannel_logout_uri: str | None, auth_method: str,
                    subject_type: str) -> tuple[Client, str | None]:
    """A pending portal of the operator's organisation; returns it and its secret (once).

    Raises InvalidClientMetadata. Audited by ``create_client`` (``client:client:registered``).
    """
    if operator.organisation is None:
        raise PortalError("only operators of an organisation register portals")
    return create_client(
        session, name=name, redirect_uris=list(redirect_uris),
        post_logout_redirect_uris=list(post_logout_redirect_uris),
        backchannel_logout_uri=backchannel_logout_uri or None, auth_method=auth_method,
        subject_type=subject_type, scope="openid", operator=operator.organisation.name,
        contacts=[operator.email], allowed_claims=[], status=ClientStatus.PENDING,
        organisation_id=operator.organisation_id, registered_via="portal",
        actor=actor_of(operator))


def update_portal(session: Session, client: Client, operator: Operator, *, name: str,
                  redirect_uris: Sequence[str], post_logout_redirect_uris: Sequence[str],
                  backchannel_logout_uri: str | None) -> None:
    """Change name and URIs; everything else stays (``update_client`` replaces all metadata,
    so the current values are passed on). Raises InvalidClientMetadata: an active pairwise
    portal keeps its sector; the subject type and auth method do not change here."""
    update_client(
        session, client, name=name, redirect_uris=list(redirect_uris),
        post_logout_redirect_uris=list(post_logout_redirect_uris), scope=None,
        grant_types=list(client.grant_types or []),
        response_types=list(client.response_types or []),
        auth_method=client.token_endpoint_auth_method, subject_type=client.subject_type,
        id_token_signed_response_alg=client.id_token_signed_response_alg,
        userinfo_signed_response_alg=client.userinfo_signed_response_alg,
        backchannel_logout_uri=backchannel_logout_uri or None,
        backchannel_logout_session_required=(bool(backchannel_logout_uri)
                                             and client.backchannel_logout_session_required),
        jwks=client.jwks, jwks_uri=client.jwks_uri,
        sector_identifier_uri=client.sector_identifier_uri,
        contacts=list(client.contacts or []), client_name_i18n=dict(client.client_name_i18n or {}),
        logo_uri=client.logo_uri, policy_uri=client.policy_uri, tos_uri=client.tos_uri,
        default_acr_values=list(client.default_acr_values or []),
        default_max_age=client.default_max_age, require_auth_time=client.require_auth_time,
        actor=actor_of(operator))


def delete_portal(session: Session, client: Client, *, actor: str) -> int:
    """Remove the portal (tokens revoked; codes, consents and requests cascade)."""
    return delete_client(session, client, actor=actor)


def approve_portal(session: Session, client: Client, *, actor: str) -> None:
    """Pending -> active (``client:client:approved``); a suspended portal is re-activated."""
    if client.status == ClientStatus.PENDING:
        approve_client(session, client, actor=actor)
    elif client.status != ClientStatus.ACTIVE:
        set_status(session, client, ClientStatus.ACTIVE, actor=actor)


# -- data-access requests -----------------------------------------------------------------------

def scope_of_claim(claim: str) -> str | None:
    for scope, claims in SCOPE_CLAIMS.items():
        if claim in claims:
            return scope
    return None


def claims_of_scopes(scope: str) -> list[str]:
    return [c for s in (scope or "").split() for c in SCOPE_CLAIMS.get(s, ())]


def requests_of(session: Session, client: Client) -> list[DataAccessRequest]:
    return list(session.scalars(select(DataAccessRequest)
                                .where(DataAccessRequest.client_pk == client.id)
                                .order_by(DataAccessRequest.id)))


def pending_requests(session: Session) -> list[DataAccessRequest]:
    return list(session.scalars(select(DataAccessRequest)
                                .where(DataAccessRequest.status == RequestStatus.PENDING)
                                .order_by(DataAccessRequest.id)))


def request_access(session: Session, client: Client, operator: Operator,
                   wanted: dict[str, tuple[str, str]]) -> list[DataAccessRequest]:
    """One pending request per claim: ``wanted`` = {claim: (purpose, legal basis)}."""
    if not wanted:
        raise PortalError("choose at least one claim")
    open_claims = {r.claim for r in requests_of(session, client)
                   if r.status in (RequestStatus.PENDING, RequestStatus.APPROVED)}
    rows = []
    for claim, (purpose, legal_basis) in wanted.items():
        if claim not in REQUESTABLE_CLAIMS:
            raise PortalError(f"unknown claim {claim!r}")
        if claim in open_claims:
            raise PortalError(f"{claim} is requested or approved already")
        purpose, legal_basis = (purpose or "").strip(), (legal_basis or "").strip()
        if not purpose or not legal_basis:
            raise PortalError(f"{claim}: purpose and legal basis are required")
        if len(purpose) > PURPOSE_MAX or len(legal_basis) > LEGAL_BASIS_MAX:
            raise PortalError(f"{claim}: purpose or legal basis too long")
        row = DataAccessRequest(client_pk=client.id, claim=claim, purpose=purpose,
                                legal_basis=legal_basis, status=RequestStatus.PENDING,
                                requested_by=operator.id)
        session.add(row)
        rows.append(row)
    session.flush()
    record(session, AuditTag.DATA_ACCESS_REQUESTED, actor=actor_of(operator),
           client_id=client.client_id,
           details={"claims": sorted(wanted), "request_ids": [r.id for r in rows]})
    return rows


def _decide(session: Session, row: DataAccessRequest, admin: Operator) -> Client:
    if not admin.is_admin:
        raise FourEyesViolation("only administrators decide data-access requests")
    if row.requested_by is not None and row.requested_by == admin.id:
        raise FourEyesViolation("four eyes: you requested this yourself; another "
                                "administrator must decide it")
    if row.status != RequestStatus.PENDING:
        raise AlreadyDecided("this request has been decided already")
    client = session.get(Client, row.client_pk)
    if client is None:
        raise NotFound("the portal does not exist any more")
    return client


def approve_request(session: Session, row: DataAccessRequest, admin: Operator,
                    note: str | None = None) -> None:
    client = _decide(session, row, admin)
    allowed = (list(client.allowed_claims) if client.allowed_claims is not None
               else claims_of_scopes(client.scope))
    if row.claim not in allowed:
        allowed.append(row.claim)
    client.allowed_claims = allowed  # a new list: JSON columns do not track in-place changes
    scope = scope_of_claim(row.claim)
    scopes = (client.scope or "openid").split()
    if scope and scope not in scopes:
        client.scope = " ".join([*scopes, scope])
    row.status = RequestStatus.APPROVED
    row.decided_by = admin.id
    row.decided_at = utcnow()
    row.decision_note = (note or "").strip()[:NOTE_MAX] or None
    record(session, AuditTag.DATA_ACCESS_APPROVED, actor=actor_of(admin),
           client_id=client.client_id,
           details={"request_id": row.id, "claim": row.claim, "requested_by": row.requested_by,
                    "scope": client.scope})
    session.flush()


def reject_request(session: Session, row: DataAccessRequest, admin: Operator,
                   note: str | None) -> None:
    client = _decide(session, row, admin)
    note = (note or "").strip()
    if not note:
        raise PortalError("say why the request is rejected")
    row.status = RequestStatus.REJECTED
    row.decided_by = admin.id
    row.decided_at = utcnow()
    row.decision_note = note[:NOTE_MAX]
    record(session, AuditTag.DATA_ACCESS_REJECTED, actor=actor_of(admin),
           client_id=client.client_id,
           details={"request_id": row.id, "claim": row.claim, "requested_by": row.requested_by})
    session.flush()


# -- record of processing -----------------------------------------------------------------------

def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def record_of_processing(session: Session, client: Client) -> dict[str, Any]:
    """The portal's record of processing (Art. 30 DSGVO input): claims, purposes, legal
    bases, decisions with who and when, the operator and the redirect URIs."""
    org = session.get(Organisation, client.organisation_id) if client.organisation_id else None
    people = {o.id: o for o in session.scalars(select(Operator))}

    def who(operator_id: int | None) -> dict[str, Any] | None:
        person = people.get(operator_id) if operator_id is not None else None
        if person is None:
            return None
        return {"id": person.id, "name": person.name, "email": person.email}

    requests = [{
        "id": r.id, "claim": r.claim, "scope": scope_of_claim(r.claim), "purpose": r.purpose,
        "legal_basis": r.legal_basis, "status": r.status,
        "requested_by": who(r.requested_by), "requested_at": _iso(r.requested_at),
        "decided_by": who(r.decided_by), "decided_at": _iso(r.decided_at),
        "decision_note": r.decision_note,
    } for r in requests_of(session, client)]
    allowed = (list(client.allowed_claims) if client.allowed_claims is not None
               else claims_of_scopes(client.scope))
    return {
        "generated_at": _iso(utcnow()),
        "portal": {
            "client_id": client.client_id, "client_name": client.client_name,
            "status": client.status, "registered_via": client.registered_via,
            "created_at": _iso(client.created_at), "updated_at": _iso(client.updated_at),
            "scope": client.scope, "subject_type": client.subject_type,
            "redirect_uris": list(client.redirect_uris or []),
            "post_logout_redirect_uris": list(client.post_logout_redirect_uris or []),
            "backchannel_logout_uri": client.backchannel_logout_uri,
        },
        "operator": {"organisation": org.name if org else client.operator,
                     "organisation_id": org.id if org else None,
                     "contacts": list(client.contacts or [])},
        "allowed_claims": allowed,
        "data_access_requests": requests,
    }
