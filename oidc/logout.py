"""OpenID Connect RP-Initiated Logout 1.0 (``end_session_endpoint``) and back-channel hooks.

``GET|POST /end-session`` (Authlib's ``EndSessionEndpoint``, stricter), in order:

1. ``id_token_hint``: signature checked against our published keys (an expired hint is
   accepted, spec section 2) and ``iss`` must be ours; its ``aud`` names the portal.
2. ``client_id``: when given with a hint it must be in the hint's ``aud``.
3. ``post_logout_redirect_uri``: must exactly match one the portal registered, and the portal
   must be identified (hint or client_id); anything else is an HTML error page and we never
   redirect (spec section 3; an open redirector otherwise).
4. A valid hint for the citizen of this browser session (same ``sid``, or the pairwise ``sub``
   that portal knows) logs out at once and redirects (with ``state``). Without a hint, or a
   hint for someone else, the citizen confirms first: one POST form ("Ja, abmelden") to
   ``/end-session/confirm`` with CSRF protection, and a link back instead of a second form.
5. Logging out records OIDC_LOGOUT, revokes the session's tokens and queues back-channel
   logout tokens (``login_session.end()`` sends ``logged_out``; see ``oidc.backchannel``),
   all in one commit; the portals are notified in the background.

``/end-session`` itself is exempt from the global CSRF check because portals may POST the
logout request (spec section 2); it only logs out without asking when the hint proves the
request comes from a portal of this very session.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oidc.rpinitiated import EndSessionEndpoint, EndSessionRequest
from flask import Blueprint, Flask, current_app, redirect, render_template
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from oidc.models import Client
from servicekonto.audit.service import record
from servicekonto.audit.tags import AuditTag

bp = Blueprint("oidc_session", __name__, template_folder="templates")

#: Parameters carried from the logout request into the confirmation form.
_CARRIED = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state", "ui_locales",
            "logout_hint")


class LogoutRequestError(InvalidRequestError):
    """An end-session request we refuse; shown as an HTML page, never redirected."""

    def __init__(self, description: str, message: Any) -> None:
        super().__init__(description)
        self.message = message


def _client(client_id: str | None) -> Client | None:
    if not client_id:
        return None
    from servicekonto.db import db

    return db.session.scalar(select(Client).where(Client.client_id == client_id))


class ServicekontoEndSession(EndSessionEndpoint):
    """Authlib's endpoint with our keys, issuer check, client lookup and strict redirects."""

    def get_server_jwks(self) -> dict[str, Any]:
        from oidc.keys import public_jwks

        return public_jwks()

    def validate_request(self, request: Any) -> EndSessionRequest:  # noqa: ANN401
        data = request.payload.data
        hint = data.get("id_token_hint")
        client_id = data.get("client_id")
        uri = data.get("post_logout_redirect_uri")
        state = data.get("state")

        claims = None
        if hint:
            try:
                claims = self._validate_id_token_hint(hint)
            except InvalidRequestError:
                raise LogoutRequestError("invalid id_token_hint", _l(
                    "The logout request contains an invalid ID token. Nothing was "
                    "changed.")) from None
            issuer = current_app.config["SERVICEKONTO"]["issuer"].rstrip("/")
            if claims.get("iss") != issuer:
                raise LogoutRequestError("id_token_hint not issued by this provider", _l(
                    "The logout request contains an ID token from another provider."))

        audience = claims.get("aud") if claims else None
        audience = [audience] if isinstance(audience, str) else list(audience or [])
        if client_id and claims and client_id not in audience:
            raise LogoutRequestError("client_id does not match the aud of id_token_hint", _l(
                "The logout request is inconsistent (the portal does not match the ID token)."))

        client = _client(client_id or (audience[0] if len(audience) == 1 else None))
        if (client_id or audience) and client is None and (client_id or uri):
            raise LogoutRequestError("unknown client", _l(
                "The portal that sent you here is not known to the Servicekonto."))

        redirect_uri = None
        if uri:
            if client is None:
                raise LogoutRequestError(
                    "post_logout_redirect_uri needs client_id or id_token_hint", _l(
                        "The logout request does not say which portal it comes from, so we "
                        "cannot send you back."))
            if uri not in (client.post_logout_redirect_uris or []):
                raise LogoutRequestError("post_logout_redirect_uri is not registered", _l(
                    "The address the portal wants to send you back to after logging out is "
                    "not registered for it. For your safety we do not follow it."))
            redirect_uri = _with_state(uri, state)

        return EndSessionRequest(request=request, client=client, id_token_claims=claims,
                                 redirect_uri=redirect_uri,
                                 logout_hint=data.get("logout_hint"),
                                 ui_locales=data.get("ui_locales"))

    def end_session(self, end_session_request: EndSessionRequest) -> None:
        _log_out(end_session_request.client)


def _with_state(uri: str, state: str | None) -> str:
    if not state:
        return uri
    from authlib.common.urls import add_params_to_uri

    return add_params_to_uri(uri, [("state", state)])


def _log_out(client: Client | None) -> None:
    """End the browser's session: audit, revoke, queue back-channel logouts, one commit."""
    from servicekonto.accounts import login_session
    from servicekonto.db import db

    auth = login_session.current_auth()
    if auth is None:
        return
    login_session.end()  # logged_out -> oidc.backchannel.queue_logout in db.session
    record(db.session, AuditTag.OIDC_LOGOUT, actor=f"citizen:{auth.user_id}",
           subject_user_id=auth.user_id, client_id=client.client_id if client else None,
           details={"initiated_by": "client" if client else "citizen"})
    db.session.commit()  # audit, revocations and deliveries together; then delivery starts


def _hint_matches_session(req: EndSessionRequest, auth: Any) -> bool:
    claims = req.id_token_claims
    if not claims:
        return False
    if claims.get("sid") and claims["sid"] == auth.sid:
        return True
    if req.client is None:
        return False
    from oidc.subjects import subject_for

    return claims.get("sub") == subject_for(req.client, auth.user_id)


def _locale(req_or_data: Any) -> str | None:
    """The first of the request's ``ui_locales`` we offer (e.g. ``en-GB en`` -> ``en``)."""
    value = getattr(req_or_data, "ui_locales", None)
    if value is None and hasattr(req_or_data, "get"):
        value = req_or_data.get("ui_locales")
    locales = current_app.config["SERVICEKONTO"]["locales"]
    for tag in (value or "").split():
        for candidate in (tag, tag.split("-")[0]):
            if candidate in locales:
                return candidate
    return None


def _render(template: str, locale: str | None, **context: Any) -> str:
    if locale:
        with force_locale(locale):
            return render_template(template, **context)
    return render_template(template, **context)


def _error_page(error: OAuth2Error) -> Any:
    from flask import request

    from servicekonto.errors import error_response

    message = getattr(error, "message", None) or _l(
        "The logout request could not be processed. Nothing was changed.")
    locale = _locale(request.values)
    if locale:
        with force_locale(locale):
            return error_response(400, "invalid_request", str(_l("Logout not possible")),
                                  str(message))
    return error_response(400, "invalid_request", str(_l("Logout not possible")), str(message))


def _server() -> Any:
    return current_app.extensions["servicekonto.oidc_server"]


def _client_name(client: Client | None) -> str | None:
    if client is None:
        return None
    from flask_babel import get_locale

    names = client.client_name_i18n or {}
    return names.get(str(get_locale())) or client.client_name


def _finish(req: EndSessionRequest, locale: str | None) -> Any:
    """After logging out (or when nobody was logged in): redirect back or say goodbye."""
    if req.redirect_uri:
        return redirect(req.redirect_uri, code=302)
    return _render("oidc_session/logged_out.html", locale, client_name=_client_name(req.client))


@bp.route("/end-session", methods=["GET", "POST"])
def end_session() -> Any:
    """The end_session_endpoint (GET or POST from the portal)."""
    from servicekonto.accounts import login_session

    try:
        req = _server().validate_endpoint_request("end_session")
    except OAuth2Error as error:
        return _error_page(error)
    locale = _locale(req)
    auth = login_session.current_auth()
    if auth is None:
        return _finish(req, locale)  # nothing to end here (already logged out)
    if _hint_matches_session(req, auth):
        response = _server().create_endpoint_response("end_session", req)
        return response or _finish(req, locale)
    data = req.request.payload.data
    carried = {name: data[name] for name in _CARRIED if data.get(name)}
    return _render("oidc_session/confirm.html", locale, carried=carried,
                   client_name=_client_name(req.client))


@bp.post("/end-session/confirm")
def end_session_confirm() -> Any:
    """The citizen confirmed the logout (CSRF-protected browser form)."""
    try:
        req = _server().validate_endpoint_request("end_session")
    except OAuth2Error as error:
        return _error_page(error)
    response = _server().create_endpoint_response("end_session", req)
    return response or _finish(req, _locale(req))


def register(app: Flask, server: Any) -> None:
    """Attach the end-session endpoint and back-channel logout delivery to ``app``."""
    from oidc import backchannel

    server.register_endpoint(ServicekontoEndSession)
    app.register_blueprint(bp)
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(end_session)  # portals may POST; the confirmation form keeps CSRF
    backchannel.register(app)
