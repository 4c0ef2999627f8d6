"""Compile every ``translations/**/messages.po`` to ``.mo`` (run by make and by the tests).

``python -m servicekonto.translations_build`` compiles what is missing or older than its .po.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
AREAS = (ROOT / "servicekonto", ROOT / "oidc")


def catalogues() -> list[Path]:
    found: list[Path] = []
    for area in AREAS:
        found.extend(sorted(area.rglob("translations/*/LC_MESSAGES/messages.po")))
    return found


def compile_all(force: bool = False) -> list[Path]:
    compiled = []
    for po_path in catalogues():
        mo_path = po_path.with_suffix(".mo")
        if not force and mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as handle:
            catalog = read_po(handle)
        with mo_path.open("wb") as handle:
            write_mo(handle, catalog)
        compiled.append(mo_path)
    return compiled


if __name__ == "__main__":
    done = compile_all(force="--force" in sys.argv)
    print(f"compiled {len(done)} translation catalogue(s)")
