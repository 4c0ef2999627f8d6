"""Passkey pages: the console list (add, rename, remove) under ``/account/passkeys`` and the
second-factor sign-in endpoints under ``/login/passkey``.

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
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from servicekonto.accounts.models import User
from servicekonto.console.views import _password_ok
from servicekonto.db import db
from servicekonto.errors import ServicekontoError
from servicekonto.passkeys import service
from servicekonto.passkeys.forms import (
    AddPasskeyForm,
    CredentialForm,
    RemovePasskeyForm,
    RenamePasskeyForm,
)

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

@bp.get("/account/passkeys")
@login_required
def index() -> Any:
    return render_template("passkeys/index.html",
                           passkeys=service.passkeys_of(db.session, _user().id))


@bp.route("/account/passkeys/new", methods=["GET", "POST"])
@login_required
def new() -> Any:
    """Step 1: name and password. Someone with a stolen session cannot add their own key."""
    user = _user()
    form = AddPasskeyForm()
    if not form.is_submitted():
        form.name.data = service.default_name(db.session, user.id)
    if form.validate_on_submit():
        if not _password_ok(user, form.current_password.data):
            form.current_password.errors.append(_("The password is wrong."))
        else:
            service.registration_ticket(user, form.name.data)
            return redirect(url_for("passkeys.create"), 303)
    return render_template("passkeys/new.html", form=form)


@bp.route("/account/passkeys/new/create", methods=["GET", "POST"])
@login_required
def create() -> Any:
    """Step 2: the browser creates the passkey (JavaScript) and posts it here."""
    user = _user()
    name = service.pending_registration(user)
    if name is None:
        flash(_("Please confirm with your password first."), "error")
        return redirect(url_for("passkeys.new"), 303)
    form = CredentialForm()
    if form.validate_on_submit():
        try:
            service.register(db.session, user, name, form.credential.data)
        except service.PasskeyRejected as exc:
            db.session.commit()  # the failure's audit event
            form.form_errors.append(rejected_message(exc.reason))
        else:
            service.end_registration()
            db.session.commit()
            flash(_("Your passkey “%(name)s” has been added.", name=name), "success")
            return redirect(url_for("passkeys.index"), 303)
    elif form.credential.errors:
        form.form_errors.extend(form.credential.errors)
        form.credential.errors = []
    return render_template("passkeys/create.html", form=form, name=name)


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
        return redirect(url_for("passkeys.index"), 303)
    return render_template("passkeys/rename.html", form=form, passkey=passkey)


@bp.route("/account/passkeys/<int:passkey_id>/remove", methods=["GET", "POST"])
@login_required
def remove(passkey_id: int) -> Any:
    user = _user()
    passkey = _owned(user, passkey_id)
    from servicekonto.mfa import factors

    allowed = factors.may_remove(db.session, user)
    form = RemovePasskeyForm()
    if allowed and form.validate_on_submit():
        if not _password_ok(user, form.current_password.data):
            form.current_password.errors.append(_("The password is wrong."))
        else:
            name = passkey.name
            service.remove(db.session, user, passkey_id)
            db.session.commit()
            factors.notify_removed(user, "passkey")
            flash(_("The passkey “%(name)s” has been removed.", name=name), "success")
            return redirect(url_for("passkeys.index"), 303)
    return render_template("passkeys/remove.html", form=form, passkey=passkey,
                           allowed=allowed)


def _owned(user: User, passkey_id: int) -> Any:
    try:
        return service.get(db.session, user, passkey_id)
    except service.NotFound:
        abort(404)
