"""The German catalogue covers every string of the core files (new untranslated strings fail).

Extraction uses the same settings as ``pybabel extract -F babel.cfg -k _l -k lazy_gettext``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file
from babel.messages.pofile import read_po
from babel.support import Translations

from servicekonto.translations_build import compile_all

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "servicekonto" / "translations" / "de" / "LC_MESSAGES" / "messages.po"
CORE_FILES = [
    "servicekonto/templates/base.html",
    "servicekonto/templates/index.html",
    "servicekonto/templates/errors/error.html",
    "servicekonto/templates/_forms.html",
    "servicekonto/errors.py",
    "servicekonto/accounts/passwords.py",
]
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def extracted(path: str) -> set[str]:
    method = "python" if path.endswith(".py") else "jinja2"
    options = {} if method == "python" else {"extensions": "jinja2.ext.do"}
    found = set()
    for _line, message, _comments, _context in extract_from_file(
            method, str(ROOT / path), keywords=KEYWORDS, options=options):
        for msgid in (message if isinstance(message, tuple) else (message,)):
            if msgid:
                found.add(msgid)
    return found


@pytest.fixture(scope="module")
def catalogue():
    with CATALOGUE.open("rb") as handle:
        return read_po(handle, locale="de")


def test_catalogue_header(catalogue):
    assert str(catalogue.locale) == "de"
    assert not catalogue.fuzzy
    assert catalogue.mime_headers  # a real header
    assert dict(catalogue.mime_headers)["Content-Type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("path", CORE_FILES)
def test_every_core_string_has_a_german_translation(catalogue, path):
    msgids = extracted(path)
    assert msgids, f"no translatable strings found in {path}"
    missing = []
    for msgid in sorted(msgids):
        message = catalogue.get(msgid)
        if message is None or not message.string or message.fuzzy:
            missing.append(msgid)
    assert not missing, f"untranslated in {path} (add them to {CATALOGUE.name}): {missing}"


def test_translations_keep_placeholders(catalogue):
    for message in catalogue:
        if message.id and message.string:
            assert sorted(PLACEHOLDER.findall(message.id)) == sorted(
                PLACEHOLDER.findall(message.string)), message.id
    assert not list(catalogue.check())


def test_formal_address(catalogue):
    informal = re.compile(r"\b(du|dich|dir|dein\w*)\b", re.IGNORECASE)
    for message in catalogue:
        if message.id and message.string:
            assert not informal.search(message.string), message.string


def test_compiled_catalogue_translates():
    compile_all()
    translations = Translations.load(str(CATALOGUE.parent.parent.parent), ["de"])
    assert translations.gettext("Page not found") == "Seite nicht gefunden"
    assert translations.gettext("Use at least %(n)d characters.") % {"n": 10} == \
        "Verwenden Sie mindestens 10 Zeichen."
