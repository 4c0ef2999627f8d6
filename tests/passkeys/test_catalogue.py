"""The passkeys' German catalogue: valid, formal, and covering every string of the area."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from tests.test_translations import PLACEHOLDER, extracted

ROOT = Path(__file__).resolve().parent.parent.parent
CATALOGUE = ROOT / "servicekonto/passkeys/translations/de/LC_MESSAGES/messages.po"
FILES = sorted(str(p.relative_to(ROOT)) for p in [
    *(ROOT / "servicekonto/passkeys").glob("*.py"),
    *(ROOT / "servicekonto/templates/passkeys").glob("*.html")])


@pytest.fixture(scope="module")
def catalogue():
    with CATALOGUE.open("rb") as handle:
        return read_po(handle, locale="de")


def test_header(catalogue):
    assert str(catalogue.locale) == "de" and not catalogue.fuzzy
    assert dict(catalogue.mime_headers)["Content-Type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("path", FILES)
def test_every_string_is_translated(catalogue, path):
    translated = {m.id for m in catalogue if m.id and m.string and not m.fuzzy}
    missing = sorted(extracted(path) - translated)
    assert not missing, f"untranslated in {path}: {missing}"


def test_placeholders_and_formal_address(catalogue):
    informal = re.compile(r"\b(du|dich|dir|dein\w*)\b", re.IGNORECASE)
    for message in catalogue:
        if message.id and message.string:
            assert sorted(PLACEHOLDER.findall(message.id)) == sorted(
                PLACEHOLDER.findall(message.string)), message.id
            assert not informal.search(message.string), message.string
    assert not list(catalogue.check())
