"""Second-factor pages: the sign-in step (``/login/second-factor``) and the console's security
page (``/account/security``: authenticator app, recovery codes, step-up).

Thin views: ``factors`` owns the pending step and its completion, ``services`` the TOTP and
recovery-code rules; the view commits, then mails.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from servicekonto.accounts import attempts, authentication
from servicekonto.accounts.models import User
from servicekonto.accounts.views import safe_next
from servicekonto.db import db
from servicekonto.mfa import factors, services, totp
from servicekonto.mfa.forms import ActionForm, ReauthForm, RecoveryCodeForm, TotpCodeForm

bp = Blueprint("mfa", __name__)

TOTP_ISSUER = "Servicekonto"


def _ip() -> str:
    return request.remote_addr or "unknown"


def _user() -> User:
    return current_user._get_current_object()  # type: ignore[attr-defined]


def no_store(body: str, status: int = 200) -> Response:
    """Pages showing secrets (seed, recovery codes) must not stay in any cache."""
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


# -- the second-factor step of the sign-in (and of a step-up) -----------------------------------

def login_forms(user: User) -> tuple[list[factors.FactorKind], dict[str, Any]]:
    kinds = factors.enrolled(db.session, user.id)
    forms: dict[str, Any] = {k.name: k.login_form() for k in kinds if k.login_form}
    if kinds and services.recovery_codes_left(db.session, user.id):
        forms["recovery_code"] = RecoveryCodeForm()
    return kinds, forms


def second_factor_page(user: User, kinds: list[factors.FactorKind], forms: dict[str, Any],
                        status: int = 200) -> Any:
    body = render_template("mfa/second_factor.html", user=user, kinds=kinds, forms=forms,
                           next_url=factors.pending_next(), step_up=factors.is_step_up())
    return no_store(body, status)


def start_again() -> Any:
    flash(_("Your sign-in took too long. Please start again."), "error")
    return redirect(url_for("accounts.login"))


@bp.get("/login/second-factor")
def second_factor() -> Any:
    user = factors.pending_user()
    if user is None:
        return start_again()
    kinds, forms = login_forms(user)
    if not kinds:  # the factor was removed meanwhile (e.g. by an administrator)
        factors.cancel()
        return start_again()
    return second_factor_page(user, kinds, forms)


def _verify(method: str, form_key: str, field: str, check: Any, wrong: str) -> Any:
    """Shared by the code forms: throttle, check, finish (or count the failure)."""
    user = factors.pending_user()
    if user is None:
        return start_again()
    kinds, forms = login_forms(user)
    form = forms.get(form_key)
    if form is None:
        return redirect(url_for("mfa.second_factor"))
    if form.validate_on_submit():
        try:
            factors.ensure_not_blocked(user, _ip())
        except authentication.LoginBlocked as exc:
            raise attempts.too_many(exc.retry_after) from None
        if check(user, getattr(form, field).data):
            kind = factors.kind(method)
            next_url = factors.finish(user, method=method, amr=kind.amr if kind else "otp")
            db.session.commit()
            if method == "recovery_code":
                factors.send_security_mail(
                    user, "recovery_code_used",
                    left=services.recovery_codes_left(db.session, user.id))
            return redirect(next_url)
        try:
            factors.record_failure(db.session, user, method=method, ip=_ip())
        except authentication.LoginFailed as exc:
            attempts.handle_failure(exc)
            getattr(form, field).errors = [*getattr(form, field).errors, wrong]
    return second_factor_page(user, kinds, forms, status=400)


@bp.post("/login/second-factor/totp")
def login_totp() -> Any:
    return _verify("totp", "totp", "code",
                   lambda user, code: services.verify_totp(db.session, user, code),
                   _("The code is wrong or has been used already. Wait for the next code in "
                     "your app and enter it."))


@bp.post("/login/second-factor/recovery-code")
def login_recovery_code() -> Any:
    return _verify("recovery_code", "recovery_code", "recovery_code",
                   lambda user, code: services.use_recovery_code(db.session, user, code),
                   _("This recovery code is wrong or has been used already."))


# -- the console's security page -----------------------------------------------------------------

@bp.get(factors.SECURITY_PATH)
@login_required
def security() -> Any:
    user = _user()
    return render_template(
        "mfa/security.html", user=user, kinds=factors.kinds(),
        total=factors.total_enrolled(db.session, user.id),
        proved=factors.session_proved_second_factor(),
        codes_left=services.recovery_codes_left(db.session, user.id),
        totp_row=services.totp_factor(db.session, user.id), step_up_form=ActionForm())


@bp.post("/account/security/confirm")
@login_required
def step_up() -> Any:
    """Prove a second factor in this session (e.g. before removing the last one)."""
    user = _user()
    form = ActionForm()
    if not form.validate_on_submit() or factors.total_enrolled(db.session, user.id) == 0:
        return redirect(url_for("mfa.security"), 303)
    next_url = safe_next(request.form.get("next")) or url_for("mfa.security")
    factors.begin(user, next_url, step_up=True)
    return redirect(url_for("mfa.second_factor"), 303)


@bp.route("/account/security/totp", methods=["GET", "POST"])
@login_required
def totp_setup() -> Any:
    user = _user()
    try:
        had_row = services.totp_factor(db.session, user.id) is not None
        secret = services.start_totp(db.session, user)
    except services.AlreadyEnrolled:
        flash(_("You have set up an authenticator app already."), "success")
        return redirect(url_for("mfa.security"), 303)
    if not had_row:
        db.session.commit()  # the seed must survive until the code confirms it
    form = TotpCodeForm()
    if form.validate_on_submit():
        codes = services.confirm_totp(db.session, user, form.code.data)
        if codes is not None:
            db.session.commit()
            factors.send_security_mail(user, "factor_added", factor=_("Authenticator app"))
            return no_store(render_template("mfa/recovery_codes.html", codes=codes,
                                             enrolled=True))
        form.code.errors = [*form.code.errors, _(
            "The code is wrong. Check that the time on your phone is set automatically and "
            "enter the code the app shows now.")]
    uri = totp.provisioning_uri(secret, user.email, issuer=TOTP_ISSUER)
    body = render_template("mfa/totp_setup.html", form=form, qr=totp.qr_data_uri(uri),
                           manual_key=_group(secret))
    return no_store(body, 400 if form.errors else 200)


def _group(secret: str) -> str:
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


@bp.route("/account/security/totp/remove", methods=["GET", "POST"])
@login_required
def totp_remove() -> Any:
    user = _user()
    row = services.totp_factor(db.session, user.id)
    if row is None:
        return redirect(url_for("mfa.security"), 303)
    confirmed = row.confirmed_at is not None
    allowed = not confirmed or factors.may_remove(db.session, user)
    form = ReauthForm()
    if allowed and form.validate_on_submit():
        if not attempts.confirm_password(user, form.current_password.data):
            form.current_password.errors.append(_("The password is wrong."))
        else:
            services.remove_totp(db.session, user)
            db.session.commit()
            if confirmed:
                factors.notify_removed(user, "totp")
            flash(_("The authenticator app has been removed."), "success")
            return redirect(url_for("mfa.security"), 303)
    return render_template("mfa/remove.html", form=form, allowed=allowed,
                           step_up_form=ActionForm(), label=_("Authenticator app"),
                           last=factors.total_enrolled(db.session, user.id) <= 1)


@bp.route("/account/security/recovery-codes", methods=["GET", "POST"])
@login_required
def recovery_codes() -> Any:
    user = _user()
    if factors.total_enrolled(db.session, user.id) == 0:
        return redirect(url_for("mfa.security"), 303)
    form = ReauthForm()
    if form.validate_on_submit():
        if not attempts.confirm_password(user, form.current_password.data):
            form.current_password.errors.append(_("The password is wrong."))
        else:
            codes = services.new_recovery_codes(db.session, user, reason="regenerated")
            db.session.commit()
            factors.send_security_mail(user, "recovery_codes_created")
            return no_store(render_template("mfa/recovery_codes.html", codes=codes,
                                             enrolled=False))
    return render_template("mfa/regenerate.html", form=form,
                           codes_left=services.recovery_codes_left(db.session, user.id))
