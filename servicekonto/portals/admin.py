"""Administrator pages (``/admin/...``): operators with ``role = "admin"`` and TOTP.

Portals (filter by status, approve, suspend = tokens revoked at once, delete), data-access
requests (four eyes: never one's own), operators, organisations and initial access tokens (the
plain token shown once).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.exceptions import NotFound

from oidc.clients import set_status
from oidc.models import Client, ClientStatus
from servicekonto.accounts.passwords import password_problems
from servicekonto.db import db, utcnow
from servicekonto.portals import services
from servicekonto.portals.forms import (
    ActionForm,
    DecisionForm,
    InitialTokenForm,
    OperatorForm,
    OrganisationForm,
    choice,
)
from servicekonto.portals.models import (
    DataAccessRequest,
    InitialAccessToken,
    Operator,
    Organisation,
)
from servicekonto.portals.web import Forbidden, admin_required, client_or_404, current_operator

bp = Blueprint("admin", __name__, url_prefix="/admin")

STATUSES = [s.value for s in ClientStatus]


def _admin() -> Operator:
    operator = current_operator()
    assert operator is not None and operator.is_admin
    return operator


def _actor() -> str:
    return services.actor_of(_admin())


def _csrf_only() -> None:
    """POST-only actions: the CSRF check (CSRFProtect also runs it before every view)."""
    form = ActionForm()
    if not form.validate_on_submit():
        from werkzeug.exceptions import BadRequest

        raise BadRequest()


@bp.route("/")
@admin_required
def index() -> Any:
    return redirect(url_for("admin.clients"))


# -- portals ------------------------------------------------------------------------------------

@bp.route("/clients")
@admin_required
def clients() -> Any:
    status = request.args.get("status") or None
    if status not in (None, *STATUSES):
        status = None
    rows = services.list_clients(db.session, status)
    orgs = {o.id: o.name for o in services.list_organisations(db.session)}
    pending = len(services.pending_requests(db.session))
    return render_template("admin/clients.html", clients=rows, status=status,
                           statuses=STATUSES, orgs=orgs, pending_requests=pending,
                           action_form=ActionForm())


@bp.route("/clients/<client_id>")
@admin_required
def client(client_id: str) -> Any:
    found = client_or_404(client_id)
    org = db.session.get(Organisation, found.organisation_id) if found.organisation_id else None
    people = {o.id: o for o in services.list_operators(db.session)}
    return render_template("admin/client.html", client=found, organisation=org,
                           requests=services.requests_of(db.session, found), people=people,
                           action_form=ActionForm(), decision_form=DecisionForm(),
                           me=_admin())


@bp.route("/clients/<client_id>/approve", methods=["POST"])
@admin_required
def approve(client_id: str) -> Any:
    _csrf_only()
    found = client_or_404(client_id)
    if found.status != ClientStatus.ACTIVE:
        services.approve_portal(db.session, found, actor=_actor())
        db.session.commit()
        flash(_("The portal %(name)s is active.", name=found.client_name), "success")
    return redirect(url_for("admin.client", client_id=client_id))


@bp.route("/clients/<client_id>/suspend", methods=["POST"])
@admin_required
def suspend(client_id: str) -> Any:
    _csrf_only()
    found = client_or_404(client_id)
    if found.status != ClientStatus.SUSPENDED:
        revoked = set_status(db.session, found, ClientStatus.SUSPENDED, actor=_actor())
        db.session.commit()
        flash(_("The portal %(name)s is suspended; %(num)d tokens were revoked.",
                name=found.client_name, num=revoked), "success")
    return redirect(url_for("admin.client", client_id=client_id))


@bp.route("/clients/<client_id>/delete", methods=["GET", "POST"])
@admin_required
def delete(client_id: str) -> Any:
    found = client_or_404(client_id)
    form = ActionForm()
    if request.method == "POST" and form.validate_on_submit():
        name = found.client_name
        services.delete_portal(db.session, found, actor=_actor())
        db.session.commit()
        flash(_("The portal %(name)s has been deleted.", name=name), "success")
        return redirect(url_for("admin.clients"))
    return render_template("admin/delete.html", client=found, form=form)


# -- data-access requests -----------------------------------------------------------------------

@bp.route("/requests")
@admin_required
def requests() -> Any:
    rows = services.pending_requests(db.session)
    clients_by_pk = {c.id: c for c in db.session.scalars(
        select(Client).where(Client.id.in_({r.client_pk for r in rows})))} if rows else {}
    people = {o.id: o for o in services.list_operators(db.session)}
    return render_template("admin/requests.html", requests=rows, clients=clients_by_pk,
                           people=people, decision_form=DecisionForm(), me=_admin())


def _request_or_404(request_id: int) -> DataAccessRequest:
    row = db.session.get(DataAccessRequest, request_id)
    if row is None:
        raise NotFound()
    return row


def _decide(request_id: int, approve: bool) -> Any:
    row = _request_or_404(request_id)
    client = db.session.get(Client, row.client_pk)
    form = DecisionForm()
    back = request.form.get("back") == "client" and client is not None
    target = (url_for("admin.client", client_id=client.client_id) if back and client
              else url_for("admin.requests"))
    if not form.validate_on_submit():
        for messages in form.errors.values():
            for message in messages:
                flash(str(message), "error")
        return redirect(target)
    try:
        if approve:
            services.approve_request(db.session, row, _admin(), form.note.data)
        else:
            services.reject_request(db.session, row, _admin(), form.note.data)
    except services.FourEyesViolation:
        db.session.rollback()
        raise Forbidden(_("Four eyes: you requested this access yourself, so another "
                          "administrator must decide it.")) from None
    except services.AlreadyDecided:
        db.session.rollback()
        flash(_("This request has been decided already."), "error")
        return redirect(target)
    except services.PortalError:
        db.session.rollback()
        flash(_("Please give a reason when rejecting a request."), "error")
        return redirect(target)
    db.session.commit()
    flash(_("Approved: %(claim)s.", claim=row.claim) if approve
          else _("Rejected: %(claim)s.", claim=row.claim), "success")
    return redirect(target)


@bp.route("/requests/<int:request_id>/approve", methods=["POST"])
@admin_required
def approve_request(request_id: int) -> Any:
    return _decide(request_id, True)


@bp.route("/requests/<int:request_id>/reject", methods=["POST"])
@admin_required
def reject_request(request_id: int) -> Any:
    return _decide(request_id, False)


# -- operators and organisations ----------------------------------------------------------------

def _org_choices() -> list[tuple[int, str]]:
    return [choice(0, _("– none (administrators only) –")),
            *(choice(o.id, o.name) for o in services.list_organisations(db.session))]


@bp.route("/operators", methods=["GET", "POST"])
@admin_required
def operators() -> Any:
    form = OperatorForm()
    form.organisation_id.choices = _org_choices()
    if form.validate_on_submit():
        org = (db.session.get(Organisation, form.organisation_id.data)
               if form.organisation_id.data else None)
        problems = password_problems(form.password.data, email=form.email.data,
                                     names=(form.name.data,))
        if problems:
            form.password.errors = [*form.password.errors, *problems]
        else:
            try:
                created = services.create_operator(
                    db.session, email=form.email.data, name=form.name.data, organisation=org,
                    password=form.password.data, admin=form.admin.data, actor=_actor())
            except services.PortalError as exc:
                db.session.rollback()
                message = str(exc)
                if "exists already" in message:
                    form.email.errors = [*form.email.errors,
                                         _("An operator with this address exists already.")]
                else:
                    form.organisation_id.errors = [
                        *form.organisation_id.errors,
                        _("Operators belong to an organisation; only administrators may "
                          "have none.")]
            else:
                db.session.commit()
                flash(_("The operator %(email)s has been created. At the first login they "
                        "set up their authenticator app.", email=created.email), "success")
                return redirect(url_for("admin.operators"))
    orgs = {o.id: o.name for o in services.list_organisations(db.session)}
    return render_template("admin/operators.html", form=form,
                           operators=services.list_operators(db.session), orgs=orgs,
                           action_form=ActionForm(), me=_admin())


@bp.route("/operators/<int:operator_id>/disable", methods=["POST"])
@admin_required
def disable_operator(operator_id: int) -> Any:
    _csrf_only()
    operator = db.session.get(Operator, operator_id)
    if operator is None:
        raise NotFound()
    if operator.id == _admin().id:
        raise Forbidden(_("You cannot disable your own account."))
    services.disable_operator(db.session, operator, actor=_actor())
    db.session.commit()
    flash(_("The operator %(email)s has been disabled.", email=operator.email), "success")
    return redirect(url_for("admin.operators"))


@bp.route("/operators/<int:operator_id>/reset-totp", methods=["POST"])
@admin_required
def reset_totp(operator_id: int) -> Any:
    _csrf_only()
    operator = db.session.get(Operator, operator_id)
    if operator is None:
        raise NotFound()
    services.reset_totp(db.session, operator, actor=_actor())
    db.session.commit()
    flash(_("The authenticator of %(email)s has been reset.", email=operator.email), "success")
    return redirect(url_for("admin.operators"))


@bp.route("/organisations", methods=["GET", "POST"])
@admin_required
def organisations() -> Any:
    form = OrganisationForm()
    if form.validate_on_submit():
        try:
            services.create_organisation(db.session, form.name.data, actor=_actor())
        except services.PortalError:
            db.session.rollback()
            form.name.errors = [*form.name.errors,
                                _("An organisation with this name exists already.")]
        else:
            db.session.commit()
            flash(_("The organisation has been created."), "success")
            return redirect(url_for("admin.organisations"))
    return render_template("admin/organisations.html", form=form,
                           organisations=services.list_organisations(db.session))


# -- initial access tokens ----------------------------------------------------------------------

@bp.route("/initial-tokens", methods=["GET", "POST"])
@admin_required
def initial_tokens() -> Any:
    from servicekonto.portals import initial_tokens as tokens

    form = InitialTokenForm()
    form.organisation_id.choices = [choice(o.id, o.name)
                                    for o in services.list_organisations(db.session)]
    plain = None
    if form.validate_on_submit():
        org = db.session.get(Organisation, form.organisation_id.data)
        expires_at = (utcnow() + dt.timedelta(days=form.expires_days.data)
                      if form.expires_days.data else None)
        try:
            _row, plain = tokens.issue_initial_token(
                db.session, organisation=org, scope=form.scope.data,
                pre_approved=bool(form.pre_approved.data), uses=form.uses.data,
                expires_at=expires_at, actor=_actor())
        except ValueError as exc:  # InitialTokenUsageError: a message for the scope field
            db.session.rollback()
            plain = None
            form.scope.errors = [*form.scope.errors, str(exc)]
        else:
            db.session.commit()
    rows = list(reversed(tokens.list_initial_tokens(db.session)))
    orgs = {o.id: o.name for o in services.list_organisations(db.session)}
    states = {row.id: tokens.token_state(row) for row in rows}
    return render_template("admin/initial_tokens.html", form=form, plain=plain, tokens=rows,
                           states=states, orgs=orgs, action_form=ActionForm())


@bp.route("/initial-tokens/<int:token_id>/revoke", methods=["POST"])
@admin_required
def revoke_initial_token(token_id: int) -> Any:
    from servicekonto.portals import initial_tokens as tokens

    _csrf_only()
    row = db.session.get(InitialAccessToken, token_id)
    if row is None:
        raise NotFound()
    if row.revoked_at is None:
        tokens.revoke_initial_token(db.session, row.id, actor=_actor())
        db.session.commit()
        flash(_("The token has been revoked."), "success")
    return redirect(url_for("admin.initial_tokens"))
