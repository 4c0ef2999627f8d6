"""The passkeys' German catalogue: valid, formal, covering every string of the package and its
pages."""

from __future__ import annotations

from pathlib import Path

from tests.support import catalogues

ROOT = Path(__file__).resolve().parent.parent.parent
CATALOGUE = ROOT / "servicekonto/passkeys/translations/de/LC_MESSAGES/messages.po"
FILES = sorted(str(p.relative_to(ROOT)) for p in [
    *(ROOT / "servicekonto/passkeys").glob("*.py"),
    *(ROOT / "servicekonto/templates/passkeys").glob("*.html")])


test_catalogue, test_every_string_is_translated = catalogues.area_tests(CATALOGUE, FILES)
