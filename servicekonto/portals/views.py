"""Operator pages (``/operators/...``): login with TOTP, the organisation's portals, their
registration and metadata, secret rotation, data-access requests and the record of processing.

Views stay thin: forms validate, ``services`` applies the rules and audits, the view commits.
A secret is shown once, in the answer to the POST that made it (pages are ``no-store``).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from oidc.clients import InvalidClientMetadata, rotate_secret
from servicekonto.accounts.attempts import too_many
from servicekonto.accounts.views import safe_next
from servicekonto.audit import AuditTag, record
from servicekonto.db import db
from servicekonto.mfa import totp
from servicekonto.portals import auth, services
from servicekonto.portals.forms import (
    ActionForm,
    CodeForm,
    OperatorLoginForm,
    PortalForm,
    RegisterPortalForm,
    data_access_form,
    lines,
)
from servicekonto.portals.models import Operator, RequestStatus
from servicekonto.portals.web import (
    Forbidden,
    current_operator,
    operator_required,
    portal_for,
)

bp = Blueprint("operators", __name__, url_prefix="/operators")

#: The account name authenticator apps show next to the operator's e-mail address.
TOTP_ISSUER = "Servicekonto (Betreiber)"

#: RFC 7591 member -> form field, to show InvalidClientMetadata next to the right field.
_FIELD_OF = {
    "client_name": "client_name",
    "redirect_uris": "redirect_uris",
    "post_logout_redirect_uris": "post_logout_redirect_uris",
    "backchannel_logout_uri": "backchannel_logout_uri",
    "token_endpoint_auth_method": "auth_method",
    "subject_type": "subject_type",
    "sector_identifier_uri": "redirect_uris",
}


def _ip() -> str:
    return request.remote_addr or "unknown"


@bp.app_context_processor
def _operator_context() -> dict[str, Any]:
    def operator() -> Operator | None:
        if not request.blueprint or request.blueprint not in ("operators", "admin"):
            return None
        return current_operator()
    return {"current_operator": operator}


def _metadata_error(form: Any, exc: InvalidClientMetadata) -> None:
    name = _FIELD_OF.get(exc.field)
    field = getattr(form, name, None) if name else None
    if field is not None:
        field.errors = [*field.errors, exc.description]
    else:
        form.form_errors.append(f"{exc.field}: {exc.description}")


# -- login and logout ---------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    next_url = safe_next(request.args.get("next")) or url_for("operators.index")
    if current_operator() is not None:
        return redirect(next_url)
    form = OperatorLoginForm()
    if form.validate_on_submit():
        try:
            operator = auth.check_password(db.session, form.email.data, form.password.data,
                                           ip=_ip())
        except auth.LoginBlocked as exc:
            raise too_many(exc.retry_after) from None
        except auth.LoginFailed as exc:
            db.session.commit()  # the failure (and lock) audit events
            if exc.retry_after:
                raise too_many(exc.retry_after) from None
            form.form_errors.append(_("The e-mail address or the password is wrong."))
        else:
            db.session.commit()
            auth.begin(operator)
            return redirect(url_for("operators.login_code", next=next_url))
    return render_template("portals/login.html", form=form,
                           expired=request.args.get("expired") == "1")


@bp.route("/login/code", methods=["GET", "POST"])
def login_code() -> Any:
    next_url = safe_next(request.args.get("next")) or url_for("operators.index")
    state = auth.pending()
    operator = db.session.get(Operator, state["id"]) if state else None
    if state is None or operator is None or operator.disabled_at is not None:
        return redirect(url_for("operators.login"))
    enrol = operator.totp_confirmed_at is None
    secret = None
    if enrol:
        had_secret = operator.totp_secret_encrypted is not None
        secret = services.start_enrolment(operator)
        if not had_secret:
            db.session.commit()
    form = CodeForm()
    if form.validate_on_submit():
        try:
            auth.check_code(db.session, operator, form.code.data, ip=_ip(), enrol=enrol)
        except auth.LoginBlocked as exc:
            raise too_many(exc.retry_after) from None
        except auth.LoginFailed as exc:
            db.session.commit()
            if exc.retry_after:
                raise too_many(exc.retry_after) from None
            form.code.errors = [*form.code.errors,
                                _("The code is wrong or has been used already. Wait for the "
                                  "next code in your app and enter it.")]
        else:
            db.session.commit()
            auth.establish(operator)
            return redirect(next_url)
    context: dict[str, Any] = {"form": form, "enrol": enrol}
    if enrol and secret is not None:
        uri = totp.provisioning_uri(secret, operator.email, issuer=TOTP_ISSUER)
        context.update(qr=totp.qr_data_uri(uri), manual_key=_group(secret))
    return render_template("portals/login_code.html", **context)


def _group(secret: str) -> str:
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Any:
    form = ActionForm()
    if request.method == "POST" and form.validate_on_submit():
        operator = current_operator()
        if operator is not None:
            record(db.session, AuditTag.OPERATOR_LOGOUT, actor=services.actor_of(operator),
                   details={"operator_id": operator.id})
            db.session.commit()
        auth.end()
        return render_template("portals/logged_out.html")
    return render_template("portals/logout.html", form=form)


# -- the organisation's portals -----------------------------------------------------------------

@bp.route("/")
@operator_required
def index() -> Any:
    operator = current_operator()
    assert operator is not None
    portals = services.portals_of(db.session, operator.organisation_id)
    return render_template("portals/index.html", operator=operator, portals=portals)


@bp.route("/portals/new", methods=["GET", "POST"])
@operator_required
def register() -> Any:
    operator = current_operator()
    assert operator is not None
    if operator.organisation_id is None:
        raise Forbidden(_("Only operators of an organisation register portals."))
    form = RegisterPortalForm()
    if form.validate_on_submit():
        try:
            client, secret = services.register_portal(
                db.session, operator, name=form.client_name.data,
                redirect_uris=lines(form.redirect_uris.data),
                post_logout_redirect_uris=lines(form.post_logout_redirect_uris.data),
                backchannel_logout_uri=form.backchannel_logout_uri.data or None,
                auth_method=form.auth_method.data, subject_type=form.subject_type.data)
        except InvalidClientMetadata as exc:
            db.session.rollback()
            _metadata_error(form, exc)
        else:
            db.session.commit()
            return render_template("portals/registered.html", client=client, secret=secret)
    return render_template("portals/register.html", form=form)


@bp.route("/portals/<client_id>")
@operator_required
def portal(client_id: str) -> Any:
    client = portal_for(client_id, admins_too=True)
    requests = services.requests_of(db.session, client)
    return render_template("portals/portal.html", client=client, requests=requests,
                           action_form=ActionForm())


@bp.route("/portals/<client_id>/edit", methods=["GET", "POST"])
@operator_required
def edit(client_id: str) -> Any:
    client = portal_for(client_id)
    operator = current_operator()
    assert operator is not None
    form = PortalForm()
    if request.method == "GET":
        form.client_name.data = client.client_name
        form.redirect_uris.data = "\n".join(client.redirect_uris or [])
        form.post_logout_redirect_uris.data = "\n".join(client.post_logout_redirect_uris or [])
        form.backchannel_logout_uri.data = client.backchannel_logout_uri or ""
    if form.validate_on_submit():
        try:
            services.update_portal(
                db.session, client, operator, name=form.client_name.data,
                redirect_uris=lines(form.redirect_uris.data),
                post_logout_redirect_uris=lines(form.post_logout_redirect_uris.data),
                backchannel_logout_uri=form.backchannel_logout_uri.data or None)
        except InvalidClientMetadata as exc:
            db.session.rollback()
            client = portal_for(client_id)
            _metadata_error(form, exc)
        else:
            db.session.commit()
            flash(_("The changes have been saved."), "success")
            return redirect(url_for("operators.portal", client_id=client.client_id))
    return render_template("portals/edit.html", form=form, client=client)


@bp.route("/portals/<client_id>/secret", methods=["GET", "POST"])
@operator_required
def rotate(client_id: str) -> Any:
    client = portal_for(client_id)
    operator = current_operator()
    assert operator is not None
    form = ActionForm()
    has_secret = client.token_endpoint_auth_method in ("client_secret_basic",
                                                       "client_secret_post")
    if request.method == "POST" and has_secret and form.validate_on_submit():
        secret = rotate_secret(db.session, client, actor=services.actor_of(operator))
        db.session.commit()
        return render_template("portals/secret.html", client=client, secret=secret)
    return render_template("portals/rotate.html", client=client, form=form,
                           has_secret=has_secret)


@bp.route("/portals/<client_id>/data-access", methods=["GET", "POST"])
@operator_required
def data_access(client_id: str) -> Any:
    client = portal_for(client_id)
    operator = current_operator()
    assert operator is not None
    existing = services.requests_of(db.session, client)
    taken = {r.claim: r.status for r in existing
             if r.status in (RequestStatus.PENDING, RequestStatus.APPROVED)}
    claims = [c for c in services.REQUESTABLE_CLAIMS if c not in taken]
    form = data_access_form(claims)
    if form.validate_on_submit():
        wanted: dict[str, tuple[str, str]] = {}
        for claim in claims:
            if not getattr(form, f"want_{claim}").data:
                continue
            purpose = getattr(form, f"purpose_{claim}")
            basis = getattr(form, f"legal_basis_{claim}")
            for field in (purpose, basis):
                if not field.data:
                    field.errors = [*field.errors, _("Please fill in this field.")]
            wanted[claim] = (purpose.data or "", basis.data or "")
        if not wanted:
            form.form_errors.append(_("Choose at least one claim."))
        elif not any(getattr(form, name).errors for name in form._fields):
            services.request_access(db.session, client, operator, wanted)
            db.session.commit()
            flash(_("Your request has been sent to the administrators."), "success")
            return redirect(url_for("operators.portal", client_id=client.client_id))
    return render_template("portals/data_access.html", form=form, client=client, taken=taken)


# -- record of processing -----------------------------------------------------------------------

@bp.route("/portals/<client_id>/record.json")
@operator_required
def record_json(client_id: str) -> Response:
    client = portal_for(client_id, admins_too=True)
    data = services.record_of_processing(db.session, client)
    body = json.dumps(data, ensure_ascii=False, indent=2)
    response = Response(body, mimetype="application/json")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="record-of-processing-{client.client_id}.json"')
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/portals/<client_id>/record")
@operator_required
def record_html(client_id: str) -> Any:
    client = portal_for(client_id, admins_too=True)
    data = services.record_of_processing(db.session, client)
    return render_template("portals/record.html", client=client, record=data)
