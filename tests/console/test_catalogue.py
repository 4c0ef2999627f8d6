"""The console's German catalogue: valid, formal, and covering every string of the console."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from tests.test_translations import PLACEHOLDER, extracted

ROOT = Path(__file__).resolve().parent.parent.parent
CATALOGUE = ROOT / "servicekonto/console/translations/de/LC_MESSAGES/messages.po"
FILES = sorted(str(p.relative_to(ROOT)) for p in [
    *(ROOT / "servicekonto/console").glob("*.py"),
    *(ROOT / "servicekonto/templates/console").glob("*.html")])


@pytest.fixture(scope="module")
def catalogue():
    with CATALOGUE.open("rb") as handle:
        return read_po(handle, locale="de")


def test_header(catalogue):
    assert str(catalogue.locale) == "de" and not catalogue.fuzzy
    assert dict(catalogue.mime_headers)["Content-Type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("path", FILES)
def test_every_string_is_translated(catalogue, path):
    translated = set()
    for message in catalogue:
        if message.id and message.string and not message.fuzzy:
            translated.update(message.id if isinstance(message.id, tuple) else (message.id,))
    missing = sorted(extracted(path) - translated)
    assert not missing, f"untranslated in {path}: {missing}"


def test_placeholders_and_formal_address(catalogue):
    informal = re.compile(r"\b(du|dich|dir|dein\w*)\b", re.IGNORECASE)
    for message in catalogue:
        if not message.id or not message.string:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for msgid, text in zip(ids, strings, strict=False):
            assert sorted(PLACEHOLDER.findall(msgid)) == sorted(PLACEHOLDER.findall(text))
            assert not informal.search(text), text
    assert not list(catalogue.check())
