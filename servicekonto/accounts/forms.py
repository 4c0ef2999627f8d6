"""Forms of the account pages (Flask-WTF: CSRF on every one of them).

Every validator has an explicit, translatable message. Lengths follow the model columns;
passwords are checked against the policy in ``passwords.password_problems``.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from servicekonto.accounts.emails import InvalidEmail, normalize_email
from servicekonto.accounts.passwords import password_problems

EMAIL_MAX = 254  # users.email
NAME_MAX = 100  # users.given_name / users.family_name
#: Longest password accepted as input at all (the policy's own maximum is lower).
PASSWORD_INPUT_MAX = 1024


def _required() -> DataRequired:
    return DataRequired(message=_l("Please fill in this field."))


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class ValidEmail:
    """Accept only a syntactically valid address (email-validator, no DNS)."""

    def __call__(self, form: FlaskForm, field: Any) -> None:
        if not field.data:
            return
        try:
            normalize_email(field.data)
        except InvalidEmail:
            raise ValidationError(
                _l("Enter a valid e-mail address, for example name@example.de.")) from None


def _email_field(label: Any) -> EmailField:
    return EmailField(label, filters=[_strip], validators=[
        _required(),
        Length(max=EMAIL_MAX, message=_l("Use at most %(max)d characters.")),
        ValidEmail(),
    ])


def _new_password_fields(label: Any = None,
                         confirm_label: Any = None) -> tuple[PasswordField, PasswordField]:
    password = PasswordField(label or _l("New password"), validators=[
        _required(),
        Length(max=PASSWORD_INPUT_MAX, message=_l("Use at most %(max)d characters.")),
    ])
    confirm = PasswordField(confirm_label or _l("Repeat the new password"), validators=[
        _required(),
        EqualTo("password", message=_l("The two passwords do not match.")),
    ])
    return password, confirm


def _check_policy(field: Any, *, email: str = "", names: tuple[str, ...] = ()) -> bool:
    if field.errors or not field.data:
        return True
    try:
        email = normalize_email(email) if email else ""
    except InvalidEmail:
        email = ""
    problems = password_problems(field.data, email=email, names=names)
    field.errors = [*field.errors, *problems]
    return not problems


class LoginForm(FlaskForm):
    """The password login. Its CSRF token is checked by ``CSRFProtect`` before the view runs
    (every browser POST, this one included: tests/accounts/test_login.py) and rendered with
    ``csrf_token()``; the form itself carries no CSRF field, so a successful login does not
    sign a fresh token only to redirect (the login is a hot path: docs/performance.md)."""

    class Meta:
        csrf = False

    email = EmailField(_l("E-mail address"), filters=[_strip], validators=[
        _required(), Length(max=EMAIL_MAX, message=_l("Use at most %(max)d characters."))])
    password = PasswordField(_l("Password"), validators=[
        _required(),
        Length(max=PASSWORD_INPUT_MAX, message=_l("Use at most %(max)d characters."))])


class RegistrationForm(FlaskForm):
    email = _email_field(_l("E-mail address"))
    given_name = StringField(_l("Given name"), filters=[_strip], validators=[
        _required(), Length(max=NAME_MAX, message=_l("Use at most %(max)d characters."))])
    family_name = StringField(_l("Family name"), filters=[_strip], validators=[
        _required(), Length(max=NAME_MAX, message=_l("Use at most %(max)d characters."))])
    password, password_confirm = _new_password_fields(_l("Password"), _l("Repeat the password"))

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        names = (self.given_name.data or "", self.family_name.data or "")
        return _check_policy(self.password, email=self.email.data or "", names=names) and ok


class ForgotPasswordForm(FlaskForm):
    email = _email_field(_l("E-mail address"))


class _UserPasswordPolicy(FlaskForm):
    """A form with a new ``password`` checked against the policy for the account it is for
    (pass ``user=``): the policy refuses the account's own e-mail address and names."""

    password: Any

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        user = self.user
        names = (user.given_name, user.family_name) if user else ()
        policy_ok = _check_policy(self.password, email=user.email if user else "", names=names)
        return policy_ok and ok


class ResetPasswordForm(_UserPasswordPolicy):
    password, password_confirm = _new_password_fields()


class ChangePasswordForm(_UserPasswordPolicy):
    current_password = PasswordField(_l("Current password"), validators=[
        _required(),
        Length(max=PASSWORD_INPUT_MAX, message=_l("Use at most %(max)d characters."))])
    password, password_confirm = _new_password_fields()


class ChangeEmailForm(FlaskForm):
    email = _email_field(_l("New e-mail address"))
    current_password = PasswordField(_l("Current password"), validators=[
        _required(),
        Length(max=PASSWORD_INPUT_MAX, message=_l("Use at most %(max)d characters."))])


class ActionForm(FlaskForm):
    """A form with nothing but the CSRF token (logout, resend, confirm)."""
