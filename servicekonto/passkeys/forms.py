"""Forms of the passkey pages (Flask-WTF: CSRF on every POST form)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField
from wtforms.validators import DataRequired, Length

from servicekonto.mfa.forms import ReauthForm
from servicekonto.passkeys.models import NAME_MAX

#: A browser's answer (attestation or assertion JSON) is a few KiB; more is not a passkey.
CREDENTIAL_MAX = 64 * 1024


def _strip(value: str | None) -> str | None:
    return " ".join(value.split()) if isinstance(value, str) else value


def _name_field() -> StringField:
    return StringField(_l("Name of the passkey"), filters=[_strip], validators=[
        DataRequired(message=_l("Please give the passkey a name.")),
        Length(max=NAME_MAX, message=_l("Use at most %(max)d characters."))])


class AddPasskeyForm(ReauthForm):
    """Step 1 of a registration: the name and the password (re-authentication)."""

    name = _name_field()


class RenamePasskeyForm(FlaskForm):
    name = _name_field()


class CredentialForm(FlaskForm):
    """The browser's answer, filled in by static/passkeys.js (empty without JavaScript)."""

    credential = HiddenField(validators=[
        DataRequired(message=_l("Your browser did not send a passkey. Passkeys need "
                                "JavaScript; please turn it on or use another browser.")),
        Length(max=CREDENTIAL_MAX)])
