"""Forms of the second-factor pages (Flask-WTF: CSRF on every POST form).

One-time codes are text inputs with ``inputmode="numeric"`` and ``autocomplete="one-time-code"``
(the template adds the latter), so phones show digits and can fill in a code from a message.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length, Regexp


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class TotpCodeForm(FlaskForm):
    code = StringField(_l("Six-digit code from your app"), filters=[_strip],
                       render_kw={"inputmode": "numeric", "maxlength": "7"},
                       validators=[
                           DataRequired(message=_l("Please enter the code.")),
                           Length(max=20, message=_l("Enter the six digits from your app.")),
                           Regexp(r"^[0-9 ]{6,7}$",
                                  message=_l("Enter the six digits from your app."))])


class RecoveryCodeForm(FlaskForm):
    recovery_code = StringField(_l("Recovery code"), filters=[_strip],
                                render_kw={"spellcheck": "false", "autocapitalize": "characters"},
                                validators=[
                                    DataRequired(message=_l("Please enter a recovery code.")),
                                    Length(max=40, message=_l(
                                        "A recovery code has 16 letters and digits."))])


class ReauthForm(FlaskForm):
    """Removing a factor or making new recovery codes: the password once more."""

    current_password = PasswordField(_l("Your current password"), validators=[
        DataRequired(message=_l("Please enter your password.")),
        Length(max=1024, message=_l("Use at most %(max)d characters."))])


class ActionForm(FlaskForm):
    """Nothing but the CSRF token (a confirmation button)."""
