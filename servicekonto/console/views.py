"""Account console pages under ``/account/...``: profile, connected portals, disclosure log,
sign-in history and sessions, "this was not me", data export and account deletion.

Views stay thin: forms validate, ``services`` apply the rules and audit, the view commits.
Destructive actions are POST forms behind a confirmation page (GET shows it).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required, logout_user

from servicekonto.accounts import attempts, login_session
from servicekonto.accounts.models import User
from servicekonto.console import services
from servicekonto.console.forms import (
    ActionForm,
    DeleteAccountForm,
    DisclosureFilterForm,
    ProfileForm,
)
from servicekonto.db import db

bp = Blueprint("console", __name__, url_prefix="/account")

DISPLAY_TZ = ZoneInfo("Europe/Berlin")

#: Session flag set by "this was not me": every page leads to the password change first.
PASSWORD_CHANGE_FLAG = "console_password_change_required"
#: The login (sid) for which the durable flag (the audit event) was last looked up.
CHECKED_FLAG = "console_password_change_checked"
_ALWAYS_ALLOWED = frozenset({
    "static", "accounts.change_password", "accounts.logout", "accounts.login",
    "accounts.forgot_password", "accounts.reset_password", "accounts.verify_email",
    "accounts.confirm_email_change", "oidc_session.end_session",
    "oidc_session.end_session_confirm",
})


# -- helpers ---------------------------------------------------------------------------------

def _user() -> User:
    return current_user._get_current_object()  # type: ignore[attr-defined]


def _locale() -> str:
    return str(get_locale() or "de")


def _store() -> Any:
    return current_app.extensions["servicekonto.session_store"]


def _app() -> Any:
    return current_app._get_current_object()  # type: ignore[attr-defined]


def _current_key() -> str | None:
    return getattr(session, "key", None)


def _current_sid() -> str | None:
    return (session.get("auth") or {}).get("sid")


@bp.app_context_processor
def _labels() -> dict[str, Any]:
    return {"claim_label": services.claim_label, "acr_label": services.acr_label,
            "group_labels": services.GROUP_LABELS, "device_label": _device_text,
            "when": _when}


def _when(value: dt.datetime | None) -> str:
    """A time for people: local time of the service (Europe/Berlin), in the page language."""
    if value is None:
        return "–"
    return format_datetime(value, "medium", tzinfo=DISPLAY_TZ, locale=_locale())


def _device_text(label: str | None) -> str:
    """The stored label ("Firefox on Windows") in the page language."""
    if not label or label == "unknown":
        return _("Unknown device")
    browser, sep, system = label.partition(" on ")
    if sep:
        return _("%(browser)s on %(system)s", browser=browser, system=system)
    return label


@bp.before_app_request
def _password_change_first() -> Any:
    """After "this was not me", the next page is the password change (until it is done)."""
    if session.get("_user_id") is None or request.endpoint in _ALWAYS_ALLOWED:
        return None
    flagged = bool(session.get(PASSWORD_CHANGE_FLAG))
    sid = _current_sid()
    if not flagged and session.get(CHECKED_FLAG) != sid:
        # once per login (its first request after the login page): one indexed query
        session[CHECKED_FLAG] = sid
        flagged = current_user.is_authenticated and services.password_change_required(
            db.session, _user())
        if flagged:
            session[PASSWORD_CHANGE_FLAG] = True
    if not flagged:
        return None
    if not current_user.is_authenticated or not services.password_change_required(
            db.session, _user()):
        session.pop(PASSWORD_CHANGE_FLAG, None)
        return None
    flash(_("For your protection, please choose a new password now."), "error")
    return redirect(url_for("accounts.change_password"), 303)


# -- overview and profile --------------------------------------------------------------------

@bp.route("/profile", methods=["GET", "POST"])
@login_required
def profile() -> Any:
    user = _user()
    form = ProfileForm(obj=user)
    if request.method == "GET" and not user.country:
        form.country.data = "DE"
    if form.validate_on_submit():
        changed = services.update_profile(db.session, user, form.values())
        db.session.commit()
        flash(_("Your details have been saved.") if changed
              else _("Nothing was changed."), "success")
        return redirect(url_for("console.profile"), 303)
    return render_template("console/profile.html", form=form)


# -- connected portals -----------------------------------------------------------------------

@bp.get("/portals")
@login_required
def portals() -> Any:
    return render_template("console/portals.html", locale=_locale(),
                           portals=services.connected_portals(db.session, _user().id),
                           portal_name=services.portal_name)


@bp.route("/portals/<client_id>/withdraw", methods=["GET", "POST"])
@login_required
def withdraw(client_id: str) -> Any:
    user = _user()
    group = request.values.get("data") or None
    try:
        portal = services.connected_portal(db.session, user.id, client_id)
    except services.NotFound:
        abort(404)
    if group is not None and group not in portal.groups:
        abort(404)
    form = ActionForm()
    name = services.portal_name(portal.client, _locale())
    if request.method == "POST" and form.validate_on_submit():
        if group is None:
            services.withdraw_portal(db.session, user, client_id)
            message = _("You have withdrawn your consent for %(portal)s.", portal=name)
        else:
            services.withdraw_group(db.session, user, client_id, group)
            message = _("%(portal)s may no longer receive: %(data)s.", portal=name,
                        data=services.GROUP_LABELS[group])
        db.session.commit()
        flash(message, "success")
        return redirect(url_for("console.portals"), 303)
    return render_template("console/withdraw.html", form=form, portal=portal, name=name,
                           group=group)


# -- disclosure log --------------------------------------------------------------------------

def _filtered() -> tuple[DisclosureFilterForm, list[services.Disclosure]]:
    user = _user()
    form = DisclosureFilterForm(request.args)
    choices = services.disclosure_portals(db.session, user, _locale())
    form.portal.choices = [("", _("All portals")), *choices]
    valid = form.validate()
    if not valid:
        return form, services.disclosures(db.session, user, locale=_locale())
    return form, services.disclosures(db.session, user, client_id=form.portal.data or None,
                                      start=form.start.data, end=form.end.data,
                                      locale=_locale())


@bp.get("/disclosures")
@login_required
def disclosures() -> Any:
    form, rows = _filtered()
    return render_template("console/disclosures.html", form=form, rows=rows,
                           query=request.query_string.decode())


@bp.get("/disclosures.csv")
@login_required
def disclosures_csv() -> Any:
    _form, rows = _filtered()
    return _download(services.disclosures_csv(rows), "text/csv; charset=utf-8",
                     "datenweitergaben.csv")


@bp.get("/disclosures.json")
@login_required
def disclosures_json() -> Any:
    _form, rows = _filtered()
    body = json.dumps({"disclosures": [r.as_dict() for r in rows]}, ensure_ascii=False,
                      indent=2)
    return _download(body, "application/json", "datenweitergaben.json")


def _download(body: str, mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


# -- sign-in history and sessions ------------------------------------------------------------

@bp.get("/sign-ins")
@login_required
def sign_ins() -> Any:
    user = _user()
    known = {}
    agent = request.headers.get("User-Agent")
    if agent:
        import hashlib

        known[hashlib.sha256(agent.encode()).hexdigest()] = login_session.device_label(agent)
    rows = services.sign_in_history(db.session, user, known_devices=known)
    return render_template("console/sign_ins.html", rows=rows)


@bp.get("/sessions")
@login_required
def sessions() -> Any:
    rows = services.active_sessions(_store(), _user().id, _current_key())
    return render_template("console/sessions.html", rows=rows, form=ActionForm())


@bp.route("/sessions/<sid>/end", methods=["GET", "POST"])
@login_required
def end_session(sid: str) -> Any:
    user = _user()
    found = [s for s in services.active_sessions(_store(), user.id, _current_key())
             if s.sid == sid]
    if not found:
        flash(_("This session has already ended."), "success")
        return redirect(url_for("console.sessions"), 303)
    target = found[0]
    form = ActionForm()
    if request.method == "POST" and form.validate_on_submit():
        if target.current:
            services.record_sessions_ended(db.session, user, 1, "this")
            login_session.end()
            db.session.commit()
            return render_template("console/signed_out.html")
        ended = services.end_sessions(_app(), _store(), user.id, keep=_current_key(),
                                      only_sid=sid)
        services.record_sessions_ended(db.session, user, len(ended), "one")
        db.session.commit()
        flash(_("The session has been signed out."), "success")
        return redirect(url_for("console.sessions"), 303)
    return render_template("console/end_session.html", form=form, target=target)


@bp.route("/sessions/end-all", methods=["GET", "POST"])
@login_required
def end_all_sessions() -> Any:
    user = _user()
    form = ActionForm()
    if request.method == "POST" and form.validate_on_submit():
        ended = services.end_sessions(_app(), _store(), user.id, keep=_current_key())
        services.record_sessions_ended(db.session, user, len(ended) + 1, "everywhere")
        login_session.end()
        db.session.commit()
        return render_template("console/signed_out.html", everywhere=True)
    return render_template("console/end_all.html", form=form)


@bp.route("/not-me", methods=["GET", "POST"])
@login_required
def not_me() -> Any:
    user = _user()
    form = ActionForm()
    if request.method == "POST" and form.validate_on_submit():
        ended = services.end_sessions(_app(), _store(), user.id, keep=_current_key())
        services.record_sessions_ended(db.session, user, len(ended), "compromise")
        services.report_compromise(db.session, user, len(ended))
        db.session.commit()
        session[PASSWORD_CHANGE_FLAG] = True
        session[CHECKED_FLAG] = _current_sid()
        session.rotate()  # type: ignore[attr-defined]
        flash(_("All other sessions have been signed out. Please choose a new password now."),
              "success")
        return redirect(url_for("accounts.change_password"), 303)
    return render_template("console/not_me.html", form=form)


# -- my data ---------------------------------------------------------------------------------

@bp.get("/data")
@login_required
def my_data() -> Any:
    return render_template("console/data.html")


@bp.get("/data/export.json")
@login_required
def export() -> Any:
    data = services.export_data(db.session, _store(), _user(), current_key=_current_key(),
                                locale=_locale())
    return _download(json.dumps(data, ensure_ascii=False, indent=2), "application/json",
                     "servicekonto-daten.json")


@bp.route("/delete", methods=["GET", "POST"])
@login_required
def delete() -> Any:
    user = _user()
    form = DeleteAccountForm()
    if form.validate_on_submit():
        if not attempts.confirm_password(user, form.current_password.data):
            form.current_password.errors.append(_("The password is wrong."))
        else:
            _store().delete_for_user(user.id)  # every session, this one too (before writing)
            services.delete_account(db.session, user)
            db.session.commit()
            logout_user()
            session.destroy()  # type: ignore[attr-defined]
            return render_template("console/deleted.html")
    return render_template("console/delete.html", form=form)
