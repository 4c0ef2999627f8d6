"""Passkey pages: add, rename and remove under ``/account/passkeys`` (listed on the console's
security page, ``mfa.security``) and the second-factor sign-in under ``/login/passkey``.

A ceremony is two requests: ``.../options`` (JSON, fetched by static/passkeys.js with the CSRF
token in ``X-CSRFToken``) and a plain form POST of the browser's answer, so results, errors and
redirects are ordinary server-rendered pages. Adding and removing a passkey need the password
(the console's re-authentication), renaming does not.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from servicekonto.accounts import attempts, authentication
from servicekonto.accounts.models import User
from servicekonto.db import db
from servicekonto.errors import ServicekontoError
from servicekonto.mfa import factors
from servicekonto.mfa import services as mfa_services
from servicekonto.mfa.forms import ActionForm, ReauthForm
from servicekonto.mfa.views import login_forms, no_store, second_factor_page, start_again
from servicekonto.passkeys import service
from servicekonto.passkeys.forms import AddPasskeyForm, CredentialForm, RenamePasskeyForm

bp = Blueprint("passkeys", __name__)


class CeremonyNotAllowed(ServicekontoError):
    """Options asked for without a confirmed registration or a pending second-factor step."""

    status = 403
    code = "passkey_not_allowed"
    title = _l("Not possible right now")


_REJECTED = {
    "challenge": _l("The passkey request has expired or was already used. Please try again."),
    "malformed": _l("The passkey could not be verified. Please try again."),
    "invalid": _l("The passkey could not be verified. Please try again."),
    "unknown": _l("This passkey is not registered for your account. Please use one of your "
                  "registered passkeys or another sign-in method."),
    "duplicate": _l("This passkey is already registered."),
    "sign_count": _l("This passkey was refused: its signature counter went backwards, which can "
                     "mean that it was copied. Please use another sign-in method and check "
                     "your passkeys."),
}


def rejected_message(reason: str) -> str:
    return str(_REJECTED.get(reason, _REJECTED["invalid"]))


def _user() -> User:
    return current_user._get_current_object()  # type: ignore[attr-defined]


def _json(body: str) -> Response:
    response = Response(body, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


# -- console -----------------------------------------------------------------------------------

@bp.app_context_processor
def _passkeys_of_user() -> dict[str, Any]:
    """The console partial (``passkeys/_console.html``) lists the signed-in citizen's passkeys."""
    return {"user_passkeys": lambda user: service.passkeys_of(db.session, user.id)}


def _security() -> str:
    return url_for("mfa.security") + "#console-passkey-title"


@bp.get("/account/passkeys")
@login_required
def index() -> Any:
    """The list lives on the security page, next to the other factors."""
    return redirect(_security(), 303)


@bp.route("/account/passkeys/new", methods=["GET", "POST"])
@login_required
def new() -> Any:
    """Step 1: name and password. Someone with a stolen session cannot add their own key."""
    user = _user()
    form = AddPasskeyForm()
    if not form.is_submitted():
        form.name.data = service.default_name(db.session, user.id)
    if form.validate_on_submit():
        if not attempts.confirm_password(user, form.current_password.data):
            form.current_password.errors.append(_("The password is wrong."))
        else:
            service.registration_ticket(user, form.name.data)
            return redirect(url_for("passkeys.create"), 303)
    return render_template("passkeys/new.html", form=form)


@bp.route("/account/passkeys/new/create", methods=["GET", "POST"])
@login_required
def create() -> Any:
    """Step 2: the browser creates the passkey (JavaScript) and posts it here. The first
    second factor of an account comes with ten recovery codes, as with the authenticator app."""
    user = _user()
    name = service.pending_registration(user)
    if name is None:
        flash(_("Please confirm with your password first."), "error")
        return redirect(url_for("passkeys.new"), 303)
    form = CredentialForm()
    if form.validate_on_submit():
        first = factors.total_enrolled(db.session, user.id) == 0
        try:
            service.register(db.session, user, name, form.credential.data)
        except service.PasskeyRejected as exc:
            db.session.commit()  # the failure's audit event
            form.form_errors.append(rejected_message(exc.reason))
        else:
            codes = (mfa_services.new_recovery_codes(db.session, user, reason="passkey_enrolled")
                     if first else None)
            service.end_registration()
            db.session.commit()
            factors.send_security_mail(user, "factor_added", factor=_("Passkey “%(name)s”",
                                                                      name=name))
            flash(_("Your passkey “%(name)s” has been added.", name=name), "success")
            if codes:
                return no_store(render_template("mfa/recovery_codes.html", codes=codes,
                                                 enrolled=False))
            return redirect(_security(), 303)
    else:
        _credential_errors_to_summary(form)
    return render_template("passkeys/create.html", form=form, name=name)


def _credential_errors_to_summary(form: CredentialForm) -> None:
    """The hidden field has no label to link to: its errors go to the summary."""
    form.form_errors.extend(form.credential.errors)
    form.credential.errors = []


@bp.post("/account/passkeys/new/options")
@login_required
def registration_options() -> Any:
    user = _user()
    if service.pending_registration(user) is None:
        raise CeremonyNotAllowed(_("Please confirm with your password first."))
    return _json(service.registration_options(db.session, user))


@bp.route("/account/passkeys/<int:passkey_id>/rename", methods=["GET", "POST"])
@login_required
def rename(passkey_id: int) -> Any:
    user = _user()
    passkey = _owned(user, passkey_id)
    form = RenamePasskeyForm()
    if not form.is_submitted():
        form.name.data = passkey.name
    if form.validate_on_submit():
        service.rename(db.session, user, passkey_id, form.name.data)
        db.session.commit()
        flash(_("The passkey has been renamed."), "success")
        return redirect(_security(), 303)
    return render_template("passkeys/rename.html", form=form, passkey=passkey)


@bp.route("/account/passkeys/<int:passkey_id>/remove", methods=["GET", "POST"])
@login_required
def remove(passkey_id: int) -> Any:
    """Password again; the last factor only after this session proved one (``may_remove``)."""
    user = _user()
    passkey = _owned(user, passkey_id)
    allowed = factors.may_remove(db.session, user)
    form = ReauthForm()
    if allowed and form.validate_on_submit():
        if not attempts.confirm_password(user, form.current_password.data):
            form.current_password.errors.append(_("The password is wrong."))
        else:
            name = passkey.name
            service.remove(db.session, user, passkey_id)
            db.session.commit()
            factors.notify_removed(user, "passkey")
            flash(_("The passkey “%(name)s” has been removed.", name=name), "success")
            return redirect(_security(), 303)
    return render_template("mfa/remove.html", form=form, allowed=allowed,
                           step_up_form=ActionForm(),
                           label=_("Passkey “%(name)s”", name=passkey.name),
                           last=factors.total_enrolled(db.session, user.id) <= 1)


def _owned(user: User, passkey_id: int) -> Any:
    try:
        return service.get(db.session, user, passkey_id)
    except service.NotFound:
        abort(404)


# -- the second-factor step of the sign-in (and of a step-up) -----------------------------------

@bp.post("/login/passkey/options")
def login_options() -> Any:
    user = factors.pending_user()
    if user is None:
        raise CeremonyNotAllowed(_("Your sign-in took too long. Please start again."))
    try:
        return _json(service.authentication_options(db.session, user))
    except service.PasskeyRejected:
        raise CeremonyNotAllowed(rejected_message("unknown")) from None


@bp.post("/login/passkey")
def login() -> Any:
    """Verify the assertion, then ``factors.finish``. A rejected passkey counts against the
    account's login throttle like a wrong code (and is audited twice: what failed, and the
    failed sign-in for the history)."""
    user = factors.pending_user()
    if user is None:
        return start_again()
    kinds, forms = login_forms(user)
    form = forms.get("passkey")
    if form is None:
        return redirect(url_for("mfa.second_factor"))
    if form.validate_on_submit():
        ip = request.remote_addr or "unknown"
        try:
            factors.ensure_not_blocked(user, ip)
        except authentication.LoginBlocked as exc:
            raise attempts.too_many(exc.retry_after) from None
        try:
            service.authenticate(db.session, user, form.credential.data)
        except service.PasskeyRejected as exc:
            form.form_errors.append(rejected_message(exc.reason))
            try:
                factors.record_failure(db.session, user, method="passkey", ip=ip)
            except authentication.LoginFailed as failed:
                attempts.handle_failure(failed)
        else:
            next_url = factors.finish(user, method="passkey", amr="hwk")
            db.session.commit()
            return redirect(next_url, 303)
    else:
        _credential_errors_to_summary(form)
    return second_factor_page(user, kinds, forms, status=400)
