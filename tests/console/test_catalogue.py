"""The console's German catalogue: valid, formal, and covering every string of the console."""

from __future__ import annotations

from pathlib import Path

from tests.support import catalogues

ROOT = Path(__file__).resolve().parent.parent.parent
CATALOGUE = ROOT / "servicekonto/console/translations/de/LC_MESSAGES/messages.po"
FILES = sorted(str(p.relative_to(ROOT)) for p in [
    *(ROOT / "servicekonto/console").glob("*.py"),
    *(ROOT / "servicekonto/templates/console").glob("*.html")])


test_catalogue, test_every_string_is_translated = catalogues.area_tests(CATALOGUE, FILES)
