"""Forms of the operator and administrator pages (Flask-WTF: CSRF on every one)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from servicekonto.accounts.forms import PASSWORD_INPUT_MAX, ValidEmail
from servicekonto.portals.services import LEGAL_BASIS_MAX, NOTE_MAX, PURPOSE_MAX

URI_LIST_MAX = 5000

try:  # WTForms >= 3.3 (tuples are deprecated there)
    from wtforms.fields.choices import SelectChoice as _SelectChoice
except ImportError:  # pragma: no cover - older WTForms
    _SelectChoice = None


def choice(value: Any, label: Any) -> Any:
    """One option of a SelectField in the form the installed WTForms expects."""
    return _SelectChoice(value, label) if _SelectChoice is not None else (value, label)


def _required() -> DataRequired:
    return DataRequired(message=_l("Please fill in this field."))


def _max(n: int) -> Length:
    return Length(max=n, message=_l("Use at most %(max)d characters."))


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def lines(value: str | None) -> list[str]:
    """A textarea with one URI per line as a list (blank lines ignored)."""
    return [line.strip() for line in (value or "").splitlines() if line.strip()]


class ActionForm(FlaskForm):
    """A button that acts (CSRF only)."""


class OperatorLoginForm(FlaskForm):
    email = EmailField(_l("E-mail address"), filters=[_strip],
                       validators=[_required(), _max(254)])
    password = PasswordField(_l("Password"), validators=[_required(), _max(PASSWORD_INPUT_MAX)])


class CodeForm(FlaskForm):
    code = StringField(_l("Six-digit code"), filters=[_strip], validators=[
        _required(), _max(20),
        Regexp(r"^[0-9 ]{6,7}$", message=_l("Enter the six digits from your app."))])


AUTH_METHOD_CHOICES = [
    choice("client_secret_basic", _l("Client secret (HTTP Basic) – recommended")),
    choice("client_secret_post", _l("Client secret in the request body")),
    choice("none", _l("None: public client with PKCE (single-page and mobile apps)")),
]
SUBJECT_TYPE_CHOICES = [
    choice("pairwise", _l("Pairwise (recommended): each portal sector sees its own identifier")),
    choice("public", _l("Public: the same identifier for every portal (needs a justification)")),
]


class PortalForm(FlaskForm):
    client_name = StringField(_l("Name of the portal"), filters=[_strip],
                              validators=[_required(), _max(200)])
    redirect_uris = TextAreaField(_l("Redirect URIs (one per line)"),
                                  validators=[_required(), _max(URI_LIST_MAX)])
    post_logout_redirect_uris = TextAreaField(_l("Post-logout redirect URIs (one per line)"),
                                              validators=[Optional(), _max(URI_LIST_MAX)])
    backchannel_logout_uri = StringField(_l("Back-channel logout URI"), filters=[_strip],
                                         validators=[Optional(), _max(500)])


class RegisterPortalForm(PortalForm):
    auth_method = SelectField(_l("Client authentication"), choices=AUTH_METHOD_CHOICES,
                              default="client_secret_basic")
    subject_type = SelectField(_l("Subject identifiers"), choices=SUBJECT_TYPE_CHOICES,
                               default="pairwise")


class DecisionForm(FlaskForm):
    note = TextAreaField(_l("Note (required when rejecting)"), filters=[_strip],
                         validators=[Optional(), _max(NOTE_MAX)])


class OrganisationForm(FlaskForm):
    name = StringField(_l("Name of the organisation"), filters=[_strip],
                       validators=[_required(), _max(200)])


class OperatorForm(FlaskForm):
    email = EmailField(_l("E-mail address"), filters=[_strip],
                       validators=[_required(), _max(254), ValidEmail()])
    name = StringField(_l("Name"), filters=[_strip], validators=[_required(), _max(200)])
    organisation_id = SelectField(_l("Organisation"), coerce=int, choices=[])
    admin = BooleanField(_l("Administrator"))
    password = PasswordField(_l("Initial password"),
                             validators=[_required(), _max(PASSWORD_INPUT_MAX)])


class InitialTokenForm(FlaskForm):
    organisation_id = SelectField(_l("Organisation"), coerce=int, choices=[])
    scope = StringField(_l("Scopes its portals may ask for"), filters=[_strip],
                        default="openid", validators=[_required(), _max(200)])
    pre_approved = BooleanField(_l("Portals registered with it are active at once"))
    uses = IntegerField(_l("Number of uses (empty: unlimited)"), validators=[
        Optional(), NumberRange(min=1, max=10000, message=_l("Enter a number from 1 to 10000."))])
    expires_days = IntegerField(_l("Valid for days (empty: no expiry)"), default=30, validators=[
        Optional(), NumberRange(min=1, max=3650, message=_l("Enter a number from 1 to 3650."))])


def data_access_form(claims: list[str], formdata: Any = None) -> FlaskForm:
    """One checkbox, purpose and legal basis per requestable claim (fields named by claim)."""

    class DataAccessForm(FlaskForm):
        pass

    for claim in claims:
        setattr(DataAccessForm, f"want_{claim}", BooleanField(claim))
        setattr(DataAccessForm, f"purpose_{claim}", TextAreaField(
            _l("Purpose"), filters=[_strip], validators=[Optional(), _max(PURPOSE_MAX)]))
        setattr(DataAccessForm, f"legal_basis_{claim}", StringField(
            _l("Legal basis"), filters=[_strip], validators=[Optional(), _max(LEGAL_BASIS_MAX)]))
    form = DataAccessForm(formdata=formdata) if formdata is not None else DataAccessForm()
    form.claims = claims  # type: ignore[attr-defined]
    return form
