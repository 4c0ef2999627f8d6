"""Checks every area's German catalogue must pass (the console, second factors, ...)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from tests.test_translations import PLACEHOLDER, extracted

INFORMAL = re.compile(r"\b(du|dich|dir|dein\w*)\b", re.IGNORECASE)


def load(path: Path) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale="de")


def check_header(catalogue: Catalog) -> None:
    assert str(catalogue.locale) == "de" and not catalogue.fuzzy
    assert dict(catalogue.mime_headers)["Content-Type"] == "text/plain; charset=utf-8"


def untranslated(catalogue: Catalog, path: str) -> list[str]:
    """The strings of ``path`` (relative to the project) missing from ``catalogue``."""
    translated = set()
    for message in catalogue:
        if message.id and message.string and not message.fuzzy:
            translated.update(message.id if isinstance(message.id, tuple) else (message.id,))
    return sorted(extracted(path) - translated)


def check_placeholders_and_formal_address(catalogue: Catalog) -> None:
    for message in catalogue:
        if not message.id or not message.string:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for msgid, text in zip(ids, strings, strict=False):
            assert sorted(PLACEHOLDER.findall(msgid)) == sorted(PLACEHOLDER.findall(text))
            assert not INFORMAL.search(text), text
    assert not list(catalogue.check())


def area_tests(catalogue: Path, files: list[str]):  # noqa: ANN201
    """The two tests of an area's German catalogue (assign both at module level)::

        test_catalogue, test_every_string_is_translated = area_tests(CATALOGUE, FILES)
    """

    def test_catalogue() -> None:
        """Valid header, placeholders kept, formal address ("Sie")."""
        loaded = load(catalogue)
        check_header(loaded)
        check_placeholders_and_formal_address(loaded)

    @pytest.mark.parametrize("path", files)
    def test_every_string_is_translated(path: str) -> None:
        missing = untranslated(load(catalogue), path)
        assert not missing, f"untranslated in {path}: {missing}"

    return test_catalogue, test_every_string_is_translated
