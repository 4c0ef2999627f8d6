"""Forms of the account console (Flask-WTF: CSRF on every POST form).

Lengths follow the ``users`` columns. Validation rules:

* birthdate: a real date in the past (not before 1900);
* postal code: five digits for Germany (DE, the default), otherwise 2–10 letters, digits,
  spaces or hyphens;
* country: ISO 3166-1 alpha-2 (two letters);
* phone: E.164-like, ``+`` and 8–15 digits, spaces, hyphens, slashes and brackets allowed.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

NAME_MAX = 100
STREET_MAX = 200
LOCALITY_MAX = 100
POSTAL_MAX = 10
PHONE_MAX = 40

_DE_POSTAL = re.compile(r"^\d{5}$")
_OTHER_POSTAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]{0,8}[A-Za-z0-9]$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_PHONE_CHARS = re.compile(r"^\+[0-9 ()/-]+$")


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _max(n: int) -> Length:
    return Length(max=n, message=_l("Use at most %(max)d characters."))


class PastDate:
    def __call__(self, form: FlaskForm, field: Any) -> None:
        if field.data is None:
            return
        if field.data >= dt.date.today():
            raise ValidationError(_l("The date of birth must be in the past."))
        if field.data < dt.date(1900, 1, 1):
            raise ValidationError(_l("Enter a date after 1 January 1900."))


class PostalCode:
    def __call__(self, form: FlaskForm, field: Any) -> None:
        if not field.data:
            return
        country = (form.country.data or "DE").upper()
        if country == "DE" and not _DE_POSTAL.match(field.data):
            raise ValidationError(_l("A German postal code has five digits, e.g. 65185."))
        if country != "DE" and not _OTHER_POSTAL.match(field.data):
            raise ValidationError(_l("Enter a valid postal code."))


class Country:
    def __call__(self, form: FlaskForm, field: Any) -> None:
        if field.data and not _COUNTRY.match(field.data):
            raise ValidationError(_l("Enter the two-letter country code, e.g. DE."))


class Phone:
    def __call__(self, form: FlaskForm, field: Any) -> None:
        if not field.data:
            return
        digits = re.sub(r"\D", "", field.data)
        if not _PHONE_CHARS.match(field.data) or not 8 <= len(digits) <= 15:
            raise ValidationError(
                _l("Enter the number in international format, e.g. +49 611 1234567."))


def normalise_phone(value: str | None) -> str | None:
    """``+49 (611) 123-4567`` → ``+49 611 1234567`` style: keep ``+``, digits and spaces."""
    if not value:
        return None
    return re.sub(r"\s+", " ", re.sub(r"[()/-]", "", value)).strip()


class ProfileForm(FlaskForm):
    given_name = StringField(_l("First name"), filters=[_strip], validators=[
        DataRequired(message=_l("Please fill in this field.")), _max(NAME_MAX)])
    family_name = StringField(_l("Last name"), filters=[_strip], validators=[
        DataRequired(message=_l("Please fill in this field.")), _max(NAME_MAX)])
    birthdate = DateField(_l("Date of birth"), validators=[Optional(), PastDate()],
                          format="%Y-%m-%d")
    street_address = StringField(_l("Street and house number"), filters=[_strip],
                                 validators=[Optional(), _max(STREET_MAX)])
    postal_code = StringField(_l("Postal code"), filters=[_strip],
                              validators=[Optional(), _max(POSTAL_MAX), PostalCode()])
    locality = StringField(_l("Town or city"), filters=[_strip],
                           validators=[Optional(), _max(LOCALITY_MAX)])
    country = StringField(_l("Country (two-letter code)"), filters=[_upper],
                          validators=[Optional(), _max(2), Country()])
    phone_number = StringField(_l("Telephone number"), filters=[_strip],
                               validators=[Optional(), _max(PHONE_MAX), Phone()])

    def validate_birthdate(self, field: Any) -> None:
        if field.raw_data and field.raw_data[0] and field.data is None:
            field.errors.clear()  # instead of WTForms' untranslated "Not a valid date value."
            raise ValidationError(_l("Enter a valid date, for example 1964-08-12."))

    def values(self) -> dict[str, Any]:
        return {"given_name": self.given_name.data, "family_name": self.family_name.data,
                "birthdate": self.birthdate.data, "street_address": self.street_address.data,
                "postal_code": self.postal_code.data, "locality": self.locality.data,
                "country": self.country.data or None,
                "phone_number": normalise_phone(self.phone_number.data)}


class ActionForm(FlaskForm):
    """A confirmation: one button, the CSRF token does the rest."""


class DeleteAccountForm(FlaskForm):
    current_password = PasswordField(_l("Your current password"), validators=[
        DataRequired(message=_l("Please enter your password.")), _max(1024)])
    confirm = BooleanField(_l("I understand that my account and my data will be deleted "
                              "and that this cannot be undone."), validators=[
        DataRequired(message=_l("Please confirm that you want to delete your account."))])


class DisclosureFilterForm(FlaskForm):
    """GET filter of the disclosure log (no CSRF: it changes nothing)."""

    class Meta:
        csrf = False

    portal = SelectField(_l("Portal"), choices=[], validate_choice=False)
    start = DateField(_l("From"), validators=[Optional()], format="%Y-%m-%d")
    end = DateField(_l("Until"), validators=[Optional()], format="%Y-%m-%d")

    def validate_end(self, field: Any) -> None:
        if field.data and self.start.data and field.data < self.start.data:
            raise ValidationError(_l("The end of the period must not be before its start."))
