"""The passkeys' German catalogue: valid, formal, covering every string of the package and its
pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import catalogues

ROOT = Path(__file__).resolve().parent.parent.parent
CATALOGUE = ROOT / "servicekonto/passkeys/translations/de/LC_MESSAGES/messages.po"
FILES = sorted(str(p.relative_to(ROOT)) for p in [
    *(ROOT / "servicekonto/passkeys").glob("*.py"),
    *(ROOT / "servicekonto/templates/passkeys").glob("*.html")])


def test_catalogue_is_valid_and_formal():
    catalogue = catalogues.load(CATALOGUE)
    catalogues.check_header(catalogue)
    catalogues.check_placeholders_and_formal_address(catalogue)


@pytest.mark.parametrize("path", FILES)
def test_every_string_is_translated(path):
    missing = catalogues.untranslated(catalogues.load(CATALOGUE), path)
    assert not missing, f"untranslated in {path}: {missing}"
