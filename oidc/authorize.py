"""The authorization endpoint: validate, sign in, consent, issue a code.

The request runs through small named steps, in this order (each raises a typed error):

1. ``_step_client``        the client exists and is active            (else HTML page)
2. ``_step_redirect_uri``  redirect_uri registered, exact match       (else HTML page)
   -- from here on errors go back to the client, with ``state`` and ``iss`` (RFC 9207) --
3. ``_step_response``      response_mode query/form_post, response_type=code only
4. ``_step_unsupported``   no request objects, no repeated parameters
5. ``_step_scope``         openid present, every scope known and allowed for the client
6. ``_step_pkce``          S256 only, required for public clients
7. ``_step_prompt``        prompt, max_age, ui_locales, id_token_hint, login_hint
8. ``_step_claims``        the ``claims`` parameter, acr_values and an essential acr

Then ``_decide`` looks at the browser session: not signed in -> the validated request is kept
server-side (``session["oidc_pending"]``, capped) and the citizen goes to
``/login?next=/authorize/resume/<id>``; ``prompt=login``/``select_account``, an exceeded
``max_age`` or an ``id_token_hint`` for someone else -> ``/login?reauth=1``, once: a login after
the request was stored counts as fresh. An unverified account gets a page asking to verify the
e-mail address first (``interaction_required`` with ``prompt=none``). Then consent (stored per
portal; ``prompt=consent`` always asks), then the code (stored hashed, 60 s).

Step-up (``_wanted_level``): ``acr_values`` or an essential ``acr`` above the session's level
sends a citizen with a second factor to ``/login/second-factor`` (servicekonto.mfa) and back to
``/authorize/resume/<id>``; the same login continues at LoA substantial. Without a factor an
essential level ends in ``unmet_authentication_requirements``, a voluntary one continues at
the level reached. With ``prompt=none`` an essential step-up is ``interaction_required`` (the
citizen is signed in, so not ``login_required``); a voluntary one is not attempted.

``prompt=select_account``: there is one account per browser session, so selecting an account
means signing in again: it is handled like ``prompt=login``.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import (
    Blueprint,
    Response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, bindparam, insert, select
from werkzeug.datastructures import MultiDict

from oidc import claims as claims_mod
from oidc import pkce
from oidc.errors import AuthorizeError, PageError, page_response
from oidc.models import AuthorizationCode, Client, ClientStatus
from oidc.server import (
    get_client,
    issuer,
    reachable_acr_values,
    subject_for,
)
from oidc.tokens import new_secret
from servicekonto import prepared
from servicekonto.accounts import login_session
from servicekonto.accounts.models import CitizenRow, User, citizen_columns
from servicekonto.accounts.trust_levels import rank
from servicekonto.audit import AuditTag, record
from servicekonto.audit.service import entry, execute_audited, insert_from, insert_now
from servicekonto.consent import service as consent_service
from servicekonto.consent.models import Consent
from servicekonto.db import db, utcnow
from servicekonto.mfa import factors
from servicekonto.settings import current_settings

bp = Blueprint("oidc", __name__, template_folder="templates", static_folder="static",
               static_url_path="/oidc/static")

PENDING_KEY = "oidc_pending"
#: At most this many unfinished requests per browser session (oldest dropped first).
MAX_PENDING = 8
#: An unfinished request is forgotten after this long.
PENDING_TTL_SECONDS = 30 * 60
RESPONSE_MODES = ("query", "form_post")
PROMPTS = {"none", "login", "consent", "select_account"}
#: Parameters that must not be repeated (RFC 6749 section 3.1).
SINGLE = ("response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "prompt",
          "max_age", "response_mode", "code_challenge", "code_challenge_method", "claims",
          "acr_values", "id_token_hint", "login_hint", "ui_locales")


_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$")


@dataclass
class AuthRequest:
    """A validated authorization request (JSON-serialisable, kept in the session)."""

    client_id: str
    redirect_uri: str
    response_mode: str = "query"
    state: str | None = None
    scope: str = "openid"
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    prompt: list[str] = field(default_factory=list)
    max_age: int | None = None
    login_hint: str | None = None
    hint_sub: str | None = None
    lang: str | None = None
    claims_request: dict[str, Any] | None = None
    acr_values: list[str] = field(default_factory=list)
    stored_at: int = 0
    consent_user_id: int | None = None

    @property
    def scopes(self) -> set[str]:
        return set(self.scope.split())


class _Target:
    """Where an error may go once client and redirect URI are verified."""

    def __init__(self, redirect_uri: str, state: str | None, response_mode: str = "query"):
        self.redirect_uri = redirect_uri
        self.state = state
        self.response_mode = response_mode


def _error(error: str, description: str) -> AuthorizeError:
    return AuthorizeError(error, description)


# -- validation steps ------------------------------------------------------------------------

def _step_client(params: MultiDict) -> Client:
    """Unknown, repeated, suspended or pending clients get an HTML page (never a redirect)."""
    client_id = params.get("client_id")
    if not client_id or len(params.getlist("client_id")) > 1:
        raise PageError("invalid_request", "client_id missing or repeated")
    client = get_client(client_id)
    if client is None:
        raise PageError("invalid_client", "unknown client")
    if client.status != ClientStatus.ACTIVE:
        raise PageError("invalid_client", "client not active", message=_l(
            "This portal cannot use the Servicekonto at the moment. Please contact the "
            "portal's operator."))
    return client


def _step_redirect_uri(params: MultiDict, client: Client) -> str:
    """OIDC requires redirect_uri; it must equal a registered one exactly (no patterns)."""
    uris = params.getlist("redirect_uri")
    if len(uris) != 1 or uris[0] not in (client.redirect_uris or []):
        raise PageError("invalid_request", "redirect_uri missing or not registered",
                        message=_l("The portal sent you to an address that is not registered "
                                   "for it. For your protection you are not sent back there. "
                                   "Please contact the portal's operator."))
    return uris[0]


def _step_response(params: MultiDict, client: Client, areq: AuthRequest) -> None:
    """Only the code flow (no implicit/hybrid); response modes query and form_post."""
    mode = params.get("response_mode")
    if mode is not None and mode not in RESPONSE_MODES:
        raise _error("invalid_request", "Unsupported response_mode.")
    if mode == "form_post" and urlsplit(areq.redirect_uri).scheme not in ("http", "https"):
        raise _error("invalid_request", "form_post needs an http(s) redirect_uri.")
    areq.response_mode = mode or "query"
    response_type = params.get("response_type")
    if not response_type:
        raise _error("invalid_request", "Missing response_type.")
    if response_type != "code":
        raise _error("unsupported_response_type", "Only response_type=code is supported.")
    if "code" not in (client.response_types or ["code"]):
        raise _error("unauthorized_client", "The client may not use response_type=code.")
    if "authorization_code" not in (client.grant_types or []):
        raise _error("unauthorized_client", "The client may not use the code flow.")


def _step_unsupported(params: MultiDict) -> None:
    if "request" in params:
        raise _error("request_not_supported", "Request objects are not supported.")
    if "request_uri" in params:
        raise _error("request_uri_not_supported", "request_uri is not supported.")
    if "registration" in params:
        raise _error("registration_not_supported", "The registration parameter is not "
                                                   "supported.")
    for name in SINGLE:
        if len(params.getlist(name)) > 1:
            raise _error("invalid_request", f"Parameter {name} is repeated.")


def _step_scope(params: MultiDict, client: Client, areq: AuthRequest) -> None:
    requested = (params.get("scope") or "").split()
    if "openid" not in requested:
        raise _error("invalid_scope", "The openid scope is required.")
    allowed = set((client.scope or "openid").split()) | {"openid"}
    unknown = [s for s in requested if s not in claims_mod.SCOPES_SUPPORTED]
    if unknown:
        raise _error("invalid_scope", f"Unknown scope: {' '.join(unknown)}.")
    refused = [s for s in requested if s not in allowed]
    if refused:
        raise _error("invalid_scope", f"Scope not allowed for this client: {' '.join(refused)}.")
    areq.scope = " ".join(dict.fromkeys(requested))  # de-duplicated, order kept


def _step_pkce(params: MultiDict, client: Client, areq: AuthRequest) -> None:
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    problem = pkce.check_challenge(challenge, method,
                                   public=client.token_endpoint_auth_method == "none")
    if problem:
        raise _error("invalid_request", problem)
    areq.code_challenge = challenge or None
    areq.code_challenge_method = method if challenge else None


def _step_prompt(params: MultiDict, client: Client, areq: AuthRequest) -> None:
    prompt = (params.get("prompt") or "").split()
    if any(p not in PROMPTS for p in prompt):
        raise _error("invalid_request", "Unsupported prompt value.")
    if "none" in prompt and len(prompt) > 1:
        raise _error("invalid_request", "prompt=none cannot be combined with other values.")
    areq.prompt = prompt
    raw_max_age = params.get("max_age")
    if raw_max_age not in (None, ""):
        try:
            areq.max_age = int(raw_max_age)
        except ValueError:
            raise _error("invalid_request", "max_age must be a number of seconds.") from None
        if areq.max_age < 0:
            raise _error("invalid_request", "max_age must not be negative.")
    elif client.default_max_age is not None:
        areq.max_age = client.default_max_age
    nonce = params.get("nonce")
    if nonce is not None and len(nonce) > 255:
        raise _error("invalid_request", "nonce is too long.")
    areq.nonce = nonce or None
    state = params.get("state")
    if state is not None and len(state) > 2048:
        raise _error("invalid_request", "state is too long.")
    hint = params.get("login_hint")
    areq.login_hint = hint[:254] if hint else None
    locales = current_settings()["locales"]
    for tag in (params.get("ui_locales") or "").split():
        base = tag.split("-")[0].lower()
        if base in locales:
            areq.lang = base
            break
    id_token_hint = params.get("id_token_hint")
    if id_token_hint:
        areq.hint_sub = _hint_subject(id_token_hint, client)


def _hint_subject(token: str, client: Client) -> str:
    """The ``sub`` of an id_token_hint we issued to this client.

    The hint only ever *restricts* (forces a login or fails prompt=none), never grants access,
    so an expired token is fine (OIDC Core 3.1.2.1); signature, issuer and audience are checked.
    """
    from oidc.keys import decode_own_jwt

    try:
        claims = decode_own_jwt(token)
    except ValueError:
        raise _error("invalid_request",
                     "id_token_hint is not an ID token of this provider.") from None
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if (claims.get("iss") != issuer()
            or client.client_id not in auds or not isinstance(claims.get("sub"), str)):
        raise _error("invalid_request", "id_token_hint was not issued to this client.")
    return claims["sub"]


def _step_claims(params: MultiDict, client: Client, areq: AuthRequest) -> None:
    try:
        areq.claims_request = claims_mod.restrict_to_scopes(
            claims_mod.parse_claims_request(params.get("claims")), client.scope or "openid")
    except claims_mod.ClaimsRequestError as exc:
        raise _error("invalid_request", str(exc)) from None
    acr_values = (params.get("acr_values") or "").split() or list(client.default_acr_values or [])
    areq.acr_values = acr_values
    essential_values, essential = claims_mod.requested_acr(areq.claims_request)
    if essential and essential_values:
        reachable = reachable_acr_values()
        if not any(value in reachable for value in essential_values):
            raise _error("unmet_authentication_requirements",
                         "The requested authentication level cannot be reached.")


def validate(params: MultiDict) -> tuple[Client, AuthRequest]:
    """Run every step; PageError before the redirect URI is known, AuthorizeError after."""
    client = _step_client(params)
    redirect_uri = _step_redirect_uri(params, client)
    areq = AuthRequest(client_id=client.client_id, redirect_uri=redirect_uri,
                       state=params.get("state"))
    try:
        _step_response(params, client, areq)
        _step_unsupported(params)
        _step_scope(params, client, areq)
        _step_pkce(params, client, areq)
        _step_prompt(params, client, areq)
        _step_claims(params, client, areq)
    except AuthorizeError as exc:
        exc.target = _Target(redirect_uri, areq.state, areq.response_mode)  # type: ignore[attr-defined]
        raise
    return client, areq


# -- pending requests ------------------------------------------------------------------------

def _store(areq: AuthRequest) -> str:
    now = int(time.time())
    pending = {k: v for k, v in (session.get(PENDING_KEY) or {}).items()
               if now - v.get("stored_at", 0) < PENDING_TTL_SECONDS}
    while len(pending) >= MAX_PENDING:
        oldest = min(pending, key=lambda k: pending[k].get("stored_at", 0))
        pending.pop(oldest)
    pending_id = secrets.token_urlsafe(16)
    areq.stored_at = now
    pending[pending_id] = asdict(areq)
    session[PENDING_KEY] = pending
    return pending_id


def _update(pending_id: str, areq: AuthRequest) -> None:
    pending = dict(session.get(PENDING_KEY) or {})
    pending[pending_id] = asdict(areq)
    session[PENDING_KEY] = pending


def _load(pending_id: str) -> AuthRequest:
    data = (session.get(PENDING_KEY) or {}).get(pending_id)
    if not data or int(time.time()) - data.get("stored_at", 0) >= PENDING_TTL_SECONDS:
        raise PageError("invalid_request", "unknown or expired pending request",
                        title=_l("This sign-in request has expired"),
                        message=_l("The sign-in request is no longer valid (it took too long "
                                   "or was already completed). Please go back to the portal "
                                   "and start again."))
    return AuthRequest(**data)


def _drop(pending_id: str | None) -> None:
    if pending_id and pending_id in (session.get(PENDING_KEY) or {}):
        pending = dict(session[PENDING_KEY])
        pending.pop(pending_id, None)
        session[PENDING_KEY] = pending


# -- responses -------------------------------------------------------------------------------

def _deliver(target: _Target, params: dict[str, str]) -> Response:
    """Send ``params`` (+ state, iss) to the client by the request's response mode."""
    values = dict(params)
    if target.state is not None:
        values["state"] = target.state
    values["iss"] = issuer()
    if target.response_mode == "form_post":
        return _form_post(target.redirect_uri, values)
    sep = "&" if urlsplit(target.redirect_uri).query else "?"
    response = redirect(target.redirect_uri + sep + urlencode(values), code=302)
    response.headers["Cache-Control"] = "no-store"
    return response


def _form_post(redirect_uri: str, values: dict[str, str]) -> Response:
    """OAuth 2.0 Form Post Response Mode: an auto-submitting form (static script, no inline JS)
    with a visible button for browsers without JavaScript."""
    parts = urlsplit(redirect_uri)
    origin = f"{parts.scheme}://{parts.netloc}"
    body = render_template("oidc/form_post.html", action=redirect_uri, values=values)
    response = Response(body, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"form-action {origin}; base-uri 'none'; frame-ancestors 'none'")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _deliver_error(target: _Target, exc: AuthorizeError) -> Response:
    params = {"error": exc.error}
    if exc.description:
        params["error_description"] = exc.description
    return _deliver(target, params)


def _target(areq: AuthRequest) -> _Target:
    return _Target(areq.redirect_uri, areq.state, areq.response_mode)


def _to_login(areq: AuthRequest, pending_id: str | None, *, reauth: bool) -> Response:
    pending_id = pending_id or _store(areq)
    args: dict[str, str] = {"next": url_for("oidc.resume", pending_id=pending_id)}
    if reauth:
        args["reauth"] = "1"
    if areq.login_hint:
        args["login_hint"] = areq.login_hint
    if areq.lang:
        args["lang"] = areq.lang
    return redirect(url_for("accounts.login") + "?" + urlencode(args), code=302)


def _client_display(client: Client) -> dict[str, Any]:
    locale = str(get_locale() or "de")
    names = client.client_name_i18n or {}
    return {"name": names.get(locale) or names.get("de") or client.client_name,
            "operator": client.operator, "logo_uri": client.logo_uri,
            "policy_uri": client.policy_uri, "tos_uri": client.tos_uri}


def _consent_page(client: Client, areq: AuthRequest, pending_id: str) -> Response:
    scopes = areq.scopes
    wanted = claims_mod.consent_claims(areq.scope, areq.claims_request, client.allowed_claims)
    body = render_template(
        "oidc/consent.html", portal=_client_display(client), pending_id=pending_id,
        labels=claims_mod.consent_labels(wanted, scopes))
    response = Response(body, mimetype="text/html")
    img = "'self' data:"
    if client.logo_uri and client.logo_uri.startswith("https://"):
        netloc = urlsplit(client.logo_uri).netloc
        if _HOST.match(netloc):
            img += f" https://{netloc}"
    from servicekonto.web import CONTENT_SECURITY_POLICY

    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
        "img-src 'self' data:", f"img-src {img}")
    return response


_INSERT_CODE = insert(AuthorizationCode.__table__)
#: PostgreSQL: the code INSERT as a data-modifying CTE and its audit entry, one statement.
_CODES = AuthorizationCode.__table__
_ISSUE_CODE_AUDITED = insert_from(
    insert(_CODES).values({c.name: bindparam(c.name) for c in _CODES.c if c.name != "id"})
    .returning(_CODES.c.id).cte("issued"))
_USER_AND_CONSENT = (
    select(*citizen_columns(), Consent.id.label("consent_id"), Consent.granted_scopes,
           Consent.granted_claims)
    .outerjoin(Consent, and_(Consent.user_id == User.id,
                             Consent.client_pk == bindparam("client_pk")))
    .where(User.id == bindparam("user_id")))


def _issue_code(client: Client, areq: AuthRequest, auth: login_session.AuthState, *,
                in_session: bool = False) -> Response:
    """Write the code and its audit entry, then send the citizen back to the portal.

    PostgreSQL: one autocommit statement (the INSERT as a data-modifying CTE feeding the audit
    INSERT; atomic on its own), unless the request already wrote in ``db.session``
    (``in_session``: a consent just given), which then commits code, entry and consent
    together. SQLite: the two INSERTs in the session's transaction.
    """
    settings = current_settings()
    value, digest = new_secret()
    now = utcnow()
    values = dict(
        code_hash=digest, client_pk=client.id, user_id=auth.user_id,
        redirect_uri=areq.redirect_uri, scope=areq.scope, nonce=areq.nonce,
        code_challenge=areq.code_challenge, code_challenge_method=areq.code_challenge_method,
        claims_request=areq.claims_request, auth_time=auth.auth_time, acr=auth.acr,
        amr=list(auth.amr), sid=auth.sid, created_at=now, used_at=None,
        expires_at=now + dt.timedelta(seconds=settings["authorization_code_lifetime_seconds"]))
    audit = entry(
        AuditTag.OIDC_CODE_ISSUED, actor=f"citizen:{auth.user_id}",
        subject_user_id=auth.user_id, client_id=client.client_id,
        details={"scope": areq.scope.split(), "acr": auth.acr})
    engine = db.engine
    if engine.dialect.name == "postgresql" and not in_session:
        with db.reader.connect() as conn:
            execute_audited(conn, engine, _ISSUE_CODE_AUDITED, values, audit)
    else:
        # Core INSERTs (no ORM flush): the hot path of a signed-in citizen's authorize request.
        db.session.execute(_INSERT_CODE, values)
        insert_now(db.session, audit)
        db.session.commit()
    return _deliver(_target(areq), {"code": value})


# -- the decision ----------------------------------------------------------------------------

def _current_user() -> User | None:
    from flask_login import current_user

    if not current_user.is_authenticated:
        return None
    return current_user._get_current_object()  # type: ignore[attr-defined]


def _user_and_consent(auth: login_session.AuthState | None,
                      client: Client) -> tuple[CitizenRow | None, Any]:
    """The signed-in citizen and their consent for ``client`` in one query (hot path), as a
    plain row: the citizen as a ``CitizenRow``, the consent as the row itself (its
    ``granted_scopes`` and ``granted_claims``, what ``consent_service.is_covered`` reads) or
    None when there is none."""
    if auth is None:
        return None, None
    params = {"user_id": auth.user_id, "client_pk": client.id}
    if db.engine.dialect.name == "postgresql":
        # Autocommit (no BEGIN/ROLLBACK round trips), on the driver's cursor.
        with db.reader.connect() as conn:
            row = prepared.fetch_first(conn, _USER_AND_CONSENT, params)
    else:
        row = db.session.execute(_USER_AND_CONSENT, params).first()
    if row is None:
        return None, None
    user = CitizenRow(row)
    if user.is_disabled:
        return None, None
    return user, (row if row.consent_id is not None else None)


def _wanted_level(areq: AuthRequest, session_acr: str) -> tuple[str | None, bool]:
    """The level to step up to (None: the session's level will do) and whether it is essential.

    An essential ``acr`` (claims parameter) is met by any of its values: step up to the lowest
    reachable one unless the session already meets one (``_step_claims`` refused the request
    when none is reachable). ``acr_values`` (and a voluntary ``acr`` claim) are preferences in
    order: the first reachable value is the goal; unreachable ones (LoA high) are ignored.
    """
    reachable = reachable_acr_values()
    values, essential = claims_mod.requested_acr(areq.claims_request)
    if essential and values:
        if any(0 <= rank(v) <= rank(session_acr) for v in values):
            return None, True
        candidates = sorted((v for v in values if v in reachable), key=rank)
        return (candidates[0] if candidates else None), True
    preferred = next((v for v in [*areq.acr_values, *values] if v in reachable), None)
    if preferred is not None and rank(preferred) > rank(session_acr):
        return preferred, False
    return None, False


def _decide(client: Client, areq: AuthRequest, pending_id: str | None) -> Response:
    if areq.lang and session.get("lang") != areq.lang:
        session["lang"] = areq.lang
    auth = login_session.current_auth()
    user, consent = _user_and_consent(auth, client)
    none = "none" in areq.prompt
    if auth is None or user is None:
        if none:
            raise _error("login_required", "The citizen is not signed in.")
        return _to_login(areq, pending_id, reauth=False)

    fresh = pending_id is not None and auth.auth_time >= areq.stored_at
    reasons = []
    if "login" in areq.prompt or "select_account" in areq.prompt:
        reasons.append("prompt")
    if areq.max_age is not None and time.time() - auth.auth_time > areq.max_age:
        reasons.append("max_age")
    if areq.hint_sub is not None and areq.hint_sub != subject_for(client, user.id):
        reasons.append("id_token_hint")
    if reasons and not fresh:
        if none:
            raise _error("login_required", "A new sign-in is required.")
        return _to_login(areq, pending_id, reauth=True)
    if "id_token_hint" in reasons:
        # Signed in afresh, still someone else than the hint names.
        raise _error("login_required", "The signed-in citizen is not the one the "
                                       "id_token_hint names.")
    target, essential = _wanted_level(areq, auth.acr)
    if target is not None and (essential or not none):
        # prompt=none: a voluntary level is simply not reached (no interaction allowed); an
        # essential one is interaction_required, since the citizen *is* signed in.
        if factors.total_enrolled(db.session, user.id) > 0:
            if none:
                raise _error("interaction_required",
                             "The requested authentication level needs a second factor.")
            pending_id = pending_id or _store(areq)
            factors.begin(user, url_for("oidc.resume", pending_id=pending_id), step_up=True)
            return redirect(url_for("mfa.second_factor"), code=302)
        if essential:
            raise _error("unmet_authentication_requirements",
                         "The citizen has no second factor for the requested level.")
        # voluntary: continue at the level reached (the ID token's acr says which)

    if not user.is_verified:
        if none:
            raise _error("interaction_required", "The citizen must verify their e-mail address.")
        _drop(pending_id)
        return Response(render_template("oidc/unverified.html",
                                        portal=_client_display(client)),
                        status=403, mimetype="text/html")

    wanted = claims_mod.consent_claims(areq.scope, areq.claims_request, client.allowed_claims)
    if "consent" in areq.prompt or not consent_service.is_covered(consent, areq.scopes, wanted):
        if none:
            raise _error("consent_required", "The citizen has not consented yet.")
        areq.consent_user_id = user.id
        if pending_id is None:
            # Show the page under its own address, so reloading it or switching the language
            # (base.html's ?lang= links) keeps the request.
            pending_id = _store(areq)
            return redirect(url_for("oidc.resume", pending_id=pending_id), code=302)
        _update(pending_id, areq)
        return _consent_page(client, areq, pending_id)
    _drop(pending_id)
    return _issue_code(client, areq, auth)


def _proceed(client: Client, areq: AuthRequest, pending_id: str | None) -> Response:
    try:
        return _decide(client, areq, pending_id)
    except AuthorizeError as exc:
        _drop(pending_id)
        return _deliver_error(_target(areq), exc)


# -- views -----------------------------------------------------------------------------------

@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response:
    params = request.args if request.method == "GET" else request.form
    try:
        client, areq = validate(params)
    except PageError as exc:
        return page_response(exc)
    except AuthorizeError as exc:
        return _deliver_error(exc.target, exc)  # type: ignore[attr-defined]
    return _proceed(client, areq, None)


@bp.route("/authorize/resume/<pending_id>", methods=["GET"])
def resume(pending_id: str) -> Response:
    """Back from the login page: continue the stored request."""
    try:
        areq = _load(pending_id)
        client = _active_client(areq.client_id)
    except PageError as exc:
        return page_response(exc)
    return _proceed(client, areq, pending_id)


def _active_client(client_id: str) -> Client:
    client = get_client(client_id)
    if client is None or client.status != ClientStatus.ACTIVE:
        raise PageError("invalid_client", "client gone or not active", message=_l(
            "This portal cannot use the Servicekonto at the moment. Please contact the "
            "portal's operator."))
    return client


@bp.route("/authorize/consent", methods=["POST"])
def consent() -> Response:
    """The consent form's decision (CSRF-protected; carries the pending-request id)."""
    pending_id = request.form.get("pending", "")
    try:
        areq = _load(pending_id)
        client = _active_client(areq.client_id)
    except PageError as exc:
        return page_response(exc)
    auth = login_session.current_auth()
    user = _current_user() if auth else None
    if auth is None or user is None or areq.consent_user_id != user.id:
        # Signed out (or someone else signed in) since the page was shown: start over.
        return page_response(PageError("invalid_request", "consent for another session",
                                       title=_l("This sign-in request has expired"),
                                       message=_l("Please go back to the portal and start "
                                                  "again.")))
    decision = request.form.get("decision")
    if decision not in ("allow", "deny"):
        return page_response(PageError("invalid_request", "no decision"))
    _drop(pending_id)
    wanted = claims_mod.consent_claims(areq.scope, areq.claims_request, client.allowed_claims)
    scopes = areq.scopes
    if decision == "deny":
        consent_service.refuse(db.session, user_id=user.id, client=client, scopes=scopes,
                               claims=wanted)
        record(db.session, AuditTag.OIDC_AUTHORIZATION_DENIED, actor=f"citizen:{user.id}",
               subject_user_id=user.id, client_id=client.client_id,
               details={"reason": "consent_refused"})
        db.session.commit()
        return _deliver_error(_target(areq), _error("access_denied",
                                                    "The citizen refused consent."))
    consent_service.grant(db.session, user_id=user.id, client=client, scopes=scopes,
                          claims=wanted)
    return _issue_code(client, areq, auth, in_session=True)


@bp.route("/token", methods=["POST"])
def token() -> Response:
    """The token endpoint: Authlib dispatches to the grants in oidc/grants.py."""
    from oidc.server import get_server

    return get_server().create_token_response()


@bp.route("/userinfo", methods=["GET", "POST"], endpoint="userinfo")
def userinfo_endpoint() -> Response:
    from oidc.userinfo import userinfo

    return userinfo()
