"""The console's German catalogue: valid, formal, and covering every string of the console."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import catalogues

ROOT = Path(__file__).resolve().parent.parent.parent
CATALOGUE = ROOT / "servicekonto/console/translations/de/LC_MESSAGES/messages.po"
FILES = sorted(str(p.relative_to(ROOT)) for p in [
    *(ROOT / "servicekonto/console").glob("*.py"),
    *(ROOT / "servicekonto/templates/console").glob("*.html")])


@pytest.fixture(scope="module")
def catalogue():
    return catalogues.load(CATALOGUE)


def test_header(catalogue):
    catalogues.check_header(catalogue)


@pytest.mark.parametrize("path", FILES)
def test_every_string_is_translated(catalogue, path):
    missing = catalogues.untranslated(catalogue, path)
    assert not missing, f"untranslated in {path}: {missing}"


def test_placeholders_and_formal_address(catalogue):
    catalogues.check_placeholders_and_formal_address(catalogue)
