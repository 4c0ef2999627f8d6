"""The second-factor catalogue: valid, formal, covering every string of the mfa package, its
pages and its mails."""

from __future__ import annotations

from pathlib import Path

from tests.support import catalogues

ROOT = Path(__file__).resolve().parent.parent.parent
CATALOGUE = ROOT / "servicekonto/mfa/translations/de/LC_MESSAGES/messages.po"
MAILS = ("factor_added", "factor_removed", "recovery_code_used", "recovery_codes_created",
         "second_factors_reset")
FILES = sorted(str(p.relative_to(ROOT)) for p in [
    *(ROOT / "servicekonto/mfa").glob("*.py"),
    *(ROOT / "servicekonto/templates/mfa").glob("*.html"),
    *(ROOT / "servicekonto/templates/mail" / f"{name}.txt" for name in MAILS)])


test_catalogue, test_every_string_is_translated = catalogues.area_tests(CATALOGUE, FILES)
