"""The second-factor catalogue: valid, formal, covering every string of the mfa package, its
pages and its mails."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import catalogues

ROOT = Path(__file__).resolve().parent.parent.parent
CATALOGUE = ROOT / "servicekonto/mfa/translations/de/LC_MESSAGES/messages.po"
MAILS = ("factor_added", "factor_removed", "recovery_code_used", "recovery_codes_created",
         "second_factors_reset")
FILES = sorted(str(p.relative_to(ROOT)) for p in [
    *(ROOT / "servicekonto/mfa").glob("*.py"),
    *(ROOT / "servicekonto/templates/mfa").glob("*.html"),
    *(ROOT / "servicekonto/templates/mail" / f"{name}.txt" for name in MAILS)])


def test_catalogue_is_valid_and_formal():
    catalogue = catalogues.load(CATALOGUE)
    catalogues.check_header(catalogue)
    catalogues.check_placeholders_and_formal_address(catalogue)


@pytest.mark.parametrize("path", FILES)
def test_every_string_is_translated(path):
    missing = catalogues.untranslated(catalogues.load(CATALOGUE), path)
    assert not missing, f"untranslated in {path}: {missing}"
