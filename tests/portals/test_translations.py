"""The operator catalogue covers every string of the operator and administrator pages."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "servicekonto/portals/translations/de/LC_MESSAGES/messages.po"
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
SOURCES = [*sorted((ROOT / "servicekonto/portals").glob("*.py")),
           *sorted((ROOT / "servicekonto/templates/portals").glob("*.html")),
           *sorted((ROOT / "servicekonto/templates/admin").glob("*.html"))]
OWN = {"views.py", "admin.py", "web.py", "forms.py", "auth.py", "services.py", "cli.py",
       "__init__.py"}


def test_catalogue_is_complete_formal_and_keeps_placeholders():
    with CATALOGUE.open("rb") as handle:
        catalogue = read_po(handle, locale="de")
    assert not catalogue.fuzzy and dict(catalogue.mime_headers)["Content-Type"] == \
        "text/plain; charset=utf-8"
    missing = []
    for path in SOURCES:
        if path.suffix == ".py" and path.name not in OWN:
            continue  # initial_tokens.py and models.py belong to others
        method = "python" if path.suffix == ".py" else "jinja2"
        options = {} if method == "python" else {"extensions": "jinja2.ext.do"}
        for _line, message, _c, _ctx in extract_from_file(method, str(path), keywords=KEYWORDS,
                                                          options=options):
            msgid = message[0] if isinstance(message, tuple) else message
            entry = catalogue.get(msgid)
            if entry is None or not entry.string:
                missing.append((path.name, msgid))
    assert not missing, missing
    informal = re.compile(r"\b(du|dich|dir|dein\w*)\b", re.IGNORECASE)
    placeholder = re.compile(r"%\(\w+\)[sd]")
    for message in catalogue:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in strings:
            assert not informal.search(text), text
            assert sorted(placeholder.findall(ids[0])) == sorted(placeholder.findall(text))
