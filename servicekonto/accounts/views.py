"""Account pages: registration, verification, login, logout, password reset and changes.

The views stay thin: forms validate input, the service modules apply the rules (and audit), the
view commits and only then sends mail. A mail that cannot be sent never undoes the committed
change; the citizen sees the same page and can ask for a new link.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
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
from flask_login import current_user, login_required
from sqlalchemy.exc import IntegrityError

from servicekonto import mail
from servicekonto.accounts import (
    attempts,
    authentication,
    email_change,
    email_links,
    login_session,
    rate_limits,
    recovery,
    registration,
)
from servicekonto.accounts.emails import InvalidEmail, normalize_email
from servicekonto.accounts.forms import (
    EMAIL_MAX,
    ActionForm,
    ChangeEmailForm,
    ChangePasswordForm,
    ForgotPasswordForm,
    LoginForm,
    RegistrationForm,
    ResetPasswordForm,
)
from servicekonto.accounts.models import User
from servicekonto.accounts.services import PasswordRejected
from servicekonto.audit import AuditTag, record
from servicekonto.audit.service import insert_now
from servicekonto.db import db
from servicekonto.mfa import factors
from servicekonto.settings import current_settings

log = logging.getLogger(__name__)

bp = Blueprint("accounts", __name__)


# -- helpers ---------------------------------------------------------------------------------

@bp.context_processor
def _password_policy() -> dict[str, Any]:
    return {"password_min_length": current_settings()["password_min_length"]}


def _ip() -> str:
    return request.remote_addr or "unknown"


def _locale() -> str:
    return str(get_locale() or current_settings()["locales"][0])


def _link(endpoint: str, **values: Any) -> str:
    """An absolute link for mails, built from the issuer (never from the request's Host)."""
    return current_settings()["issuer"] + url_for(endpoint, **values)


def _send(to: str, template: str, locale: str, **context: Any) -> bool:
    """Send a mail after the commit; a failure is logged, never shown differently."""
    try:
        mail.send_template(to, template, locale, **context)
    except mail.MailError:
        log.warning("could not send the %s mail; the citizen can ask for a new one", template)
        return False
    return True


def _user() -> User:
    return current_user._get_current_object()  # type: ignore[attr-defined]


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None (no open redirects)."""
    if not target or len(target) > 2048:
        return None
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _end_login() -> None:
    """Log the browser out, then commit: ``end()`` signals ``logged_out`` and the provider
    queues back-channel logouts and revokes the session's tokens in ``db.session``."""
    login_session.end()
    db.session.commit()


def _end_sessions(user_id: int, keep: str | None = None, end_current: bool = False) -> None:
    """End every session of ``user_id`` except ``keep`` (after a password reset or change);
    with ``end_current`` the browser's own session ends as well, whoever it belongs to.

    Each ended login is announced with ``login_session.logged_out`` like a normal logout, so
    the provider can tell the portals of that session (back-channel logout) in this commit.
    The store is changed first: on SQLite the request's transaction must not hold the write
    lock while the session store (its own connection) deletes.
    """
    store = current_app.extensions["servicekonto.session_store"]
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    current_key = getattr(session, "key", None)
    if end_current and current_user.is_authenticated:
        keep = current_key  # ended (and announced) by login_session.end() below
    ended = store.delete_for_user(user_id, keep=keep)
    if end_current and current_user.is_authenticated:
        login_session.end()
    for record_ in ended:
        sid = (record_.data.get("auth") or {}).get("sid")
        if sid:
            login_session.logged_out.send(app, user_id=user_id, sid=sid)
    db.session.commit()


def _limit(spec: str, scope: str, key: str) -> None:
    try:
        rate_limits.require(spec, scope, key)
    except rate_limits.RateLimited as exc:
        raise attempts.too_many(exc.retry_after) from None


_LINK_HELP = {
    "verify": "accounts.overview",
    "reset": "accounts.forgot_password",
    "change": "accounts.change_email",
}


def _link_problem(error: email_links.LinkError, kind: str) -> tuple[str, int]:
    db.session.rollback()
    if isinstance(error, email_links.LinkExpired):
        problem, status = "expired", 410
    elif isinstance(error, email_links.LinkUsed):
        problem, status = "used", 410
    else:
        problem, status = "invalid", 400
    return render_template("accounts/link_problem.html", problem=problem, kind=kind,
                           help_url=url_for(_LINK_HELP[kind])), status


# -- login and logout ------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    next_url = safe_next(request.args.get("next")) or url_for("accounts.overview")
    reauth = request.args.get("reauth") == "1"
    if current_user.is_authenticated and not reauth:
        return redirect(next_url)
    form = LoginForm()
    hint = request.args.get("login_hint", "")
    if request.method == "GET" and hint:
        form.email.data = hint.strip()[:EMAIL_MAX]
    elif request.method == "GET" and current_user.is_authenticated:
        form.email.data = _user().email  # reauth: confirm the same account
    if form.validate_on_submit():
        try:
            result = authentication.authenticate(db.session, form.email.data,
                                                 form.password.data, ip=_ip())
        except authentication.LoginBlocked as exc:
            raise attempts.too_many(exc.retry_after) from None
        except authentication.LoginFailed as exc:
            attempts.handle_failure(exc)  # the audit events, a lock notice, maybe 429
            form.form_errors.append(_("The e-mail address or the password is wrong."))
        else:
            if result.second_factor:
                insert_now(db.session, *result.audit)
                db.session.commit()
                # not logged in yet: the password step waits (5 minutes) for the second factor
                factors.begin(result.user, next_url, step_up=False)
                return redirect(url_for("mfa.second_factor"))
            if db.session.in_transaction():
                db.session.commit()  # a rehashed password
            # The success entry commits with the new session (one write at the response).
            login_session.establish(result.user, audit=result.audit)
            return redirect(next_url)
    return render_template("accounts/login.html", form=form, reauth=reauth,
                           session_expired=getattr(session, "expired", False)
                           or request.args.get("expired") == "1")


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Any:
    form = ActionForm()
    if request.method == "POST" and form.validate_on_submit():
        if current_user.is_authenticated:
            user = _user()
            record(db.session, AuditTag.ACCOUNT_LOGOUT, actor=f"citizen:{user.id}",
                   subject_user_id=user.id)
        _end_login()
        return render_template("accounts/logged_out.html")
    return render_template("accounts/logout.html", form=form)


# -- registration and verification -----------------------------------------------------------

@bp.route("/register", methods=["GET", "POST"])
def register() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("accounts.overview"))
    form = RegistrationForm()
    if form.validate_on_submit():
        _limit(current_settings()["registration_rate_limit"], "register-ip", _ip())
        email = normalize_email(form.email.data)
        try:
            result = registration.register(
                db.session, email=email, password=form.password.data,
                given_name=form.given_name.data, family_name=form.family_name.data,
                locale=_locale())
            db.session.commit()
        except IntegrityError:  # registered by a concurrent request a moment ago
            db.session.rollback()
            return render_template("accounts/check_email.html", email=email)
        user = result.user
        if result.duplicate:
            _send(user.email, "registration_duplicate", user.locale, user=user,
                  login_link=_link("accounts.login"),
                  reset_link=_link("accounts.forgot_password"))
        else:
            _send(user.email, "verify_email", user.locale, user=user,
                  link=_link("accounts.verify_email", token=result.token),
                  hours=current_settings()["verification_link_hours"])
        return render_template("accounts/check_email.html", email=email)
    return render_template("accounts/register.html", form=form)


@bp.get("/verify/<token>")
def verify_email(token: str) -> Any:
    try:
        user = registration.verify_email(db.session, token)
        db.session.commit()
    except email_links.LinkError as exc:
        return _link_problem(exc, "verify")
    return render_template("accounts/verified.html", user=user)


@bp.post("/account/verification")
@login_required
def resend_verification() -> Any:
    form = ActionForm()
    user = _user()
    if form.validate_on_submit() and not user.is_verified:
        _limit(rate_limits.MAILS_PER_ACCOUNT, "resend-verification", str(user.id))
        token = registration.new_verification_token(db.session, user)
        db.session.commit()
        _send(user.email, "verify_email", user.locale, user=user,
              link=_link("accounts.verify_email", token=token),
              hours=current_settings()["verification_link_hours"])
        flash(_("We have sent a new confirmation link to %(email)s.", email=user.email),
              "success")
    return redirect(url_for("accounts.overview"))


# -- account pages ---------------------------------------------------------------------------

@bp.get("/account")
@login_required
def overview() -> Any:
    return render_template("accounts/overview.html", user=_user(), resend_form=ActionForm())


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password() -> Any:
    user = _user()
    form = ChangePasswordForm(user=user)
    if form.validate_on_submit():
        if not attempts.confirm_password(user, form.current_password.data):
            form.current_password.errors.append(_("The current password is wrong."))
        else:
            try:
                recovery.change_password(db.session, user, form.password.data)
            except PasswordRejected as exc:  # pragma: no cover - the form checked the policy
                form.password.errors.extend(exc.problems)
            else:
                db.session.commit()
                _end_sessions(user.id, keep=getattr(session, "key", None))
                session.rotate()  # type: ignore[attr-defined]
                _send(user.email, "password_changed", user.locale, user=user,
                      reset_link=_link("accounts.forgot_password"))
                flash(_("Your password has been changed. Other devices have been logged out."),
                      "success")
                return redirect(url_for("accounts.overview"))
    return render_template("accounts/change_password.html", form=form)


@bp.route("/account/email", methods=["GET", "POST"])
@login_required
def change_email() -> Any:
    user = _user()
    form = ChangeEmailForm()
    if form.validate_on_submit():
        if not attempts.confirm_password(user, form.current_password.data):
            form.current_password.errors.append(_("The current password is wrong."))
        else:
            _limit(rate_limits.MAILS_PER_ACCOUNT, "email-change", str(user.id))
            try:
                change = email_change.request_change(db.session, user, form.email.data)
            except email_change.SameAddress:
                form.email.errors.append(_("This is already your e-mail address."))
            else:
                db.session.commit()
                if change.token:
                    _send(change.new_email, "email_change_confirm", user.locale, user=user,
                          link=_link("accounts.confirm_email_change", token=change.token),
                          hours=current_settings()["email_change_link_hours"])
                else:
                    _send(change.new_email, "email_change_taken", user.locale,
                          login_link=_link("accounts.login"),
                          reset_link=_link("accounts.forgot_password"))
                _send(change.old_email, "email_change_notice", user.locale, user=user,
                      reset_link=_link("accounts.forgot_password"))
                return render_template("accounts/email_change_sent.html",
                                       email=change.new_email)
    return render_template("accounts/change_email.html", form=form, user=user)


@bp.route("/account/email/confirm/<token>", methods=["GET", "POST"])
def confirm_email_change(token: str) -> Any:
    try:
        row = email_change.check_change_link(db.session, token)
    except email_links.LinkError as exc:
        return _link_problem(exc, "change")
    new_email = row.email
    form = ActionForm()
    if form.validate_on_submit():
        try:
            user, _old = email_change.apply_change(db.session, token)
            db.session.commit()
        except email_links.LinkError as exc:
            return _link_problem(exc, "change")
        except (email_change.AddressTaken, IntegrityError):
            db.session.rollback()
            return render_template("accounts/email_taken.html", email=new_email), 409
        return render_template("accounts/email_changed.html", email=user.email)
    return render_template("accounts/confirm_email_change.html", form=form, email=new_email)


# -- password reset --------------------------------------------------------------------------

@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password() -> Any:
    form = ForgotPasswordForm()
    if request.method == "GET" and current_user.is_authenticated:
        form.email.data = _user().email
    if form.validate_on_submit():
        _limit(current_settings()["reset_rate_limit"], "reset-ip", _ip())
        try:
            email = normalize_email(form.email.data)
        except InvalidEmail:  # pragma: no cover - the form checked it
            email = form.email.data
        request_ = None
        if rate_limits.allowed(rate_limits.RESET_MAILS_PER_ADDRESS, "reset-address",
                               rate_limits.digest(email)):
            request_ = recovery.request_reset(db.session, email)
            db.session.commit()
        if request_ is not None:
            user = request_.user
            _send(user.email, "password_reset", user.locale, user=user,
                  link=_link("accounts.reset_password", token=request_.token),
                  minutes=current_settings()["reset_link_minutes"],
                  second_factor=factors.total_enrolled(db.session, user.id) > 0)
        return render_template("accounts/reset_requested.html", email=email)
    return render_template("accounts/forgot_password.html", form=form)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> Any:
    try:
        row = recovery.check_reset_link(db.session, token)
    except email_links.LinkError as exc:
        return _link_problem(exc, "reset")
    form = ResetPasswordForm(user=row.user)
    # A reset by e-mail proves the mailbox, not the second factor: it stays (docs/second-factors)
    second_factor = factors.total_enrolled(db.session, row.user_id) > 0
    if form.validate_on_submit():
        try:
            user = recovery.complete_reset(db.session, token, form.password.data)
            db.session.commit()
        except email_links.LinkError as exc:
            return _link_problem(exc, "reset")
        except PasswordRejected as exc:  # pragma: no cover - the form checked the policy
            db.session.rollback()
            form.password.errors.extend(exc.problems)
        else:
            # every session of the account ends, and whoever is logged in in this browser too
            _end_sessions(user.id, end_current=True)
            _send(user.email, "password_changed", user.locale, user=user,
                  reset_link=_link("accounts.forgot_password"))
            return render_template("accounts/reset_done.html", second_factor=second_factor)
    return render_template("accounts/reset_password.html", form=form,
                           second_factor=second_factor)

