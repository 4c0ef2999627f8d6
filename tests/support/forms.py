"""Reading forms out of server-rendered HTML, as a browser would (CSRF token included)."""

from __future__ import annotations

from html.parser import HTMLParser


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._current: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._current = {"action": a.get("action", ""), "method": a.get("method", "get"),
                             "fields": {}, "inputs": [], "buttons": []}
            self.forms.append(self._current)
        elif self._current is not None and tag in ("input", "select", "textarea"):
            self._current["inputs"].append(a)
            fills = a.get("type") not in ("submit", "checkbox", "radio") or "checked" in a
            if fills and a.get("name"):
                self._current["fields"].setdefault(a["name"], a.get("value", ""))
        elif self._current is not None and tag == "button":
            self._current["buttons"].append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def parse_forms(html: str) -> list[dict]:
    """Every ``<form>`` with action, method, default field values, inputs and buttons."""
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def csrf_token(html: str) -> str:
    for form in parse_forms(html):
        if "csrf_token" in form["fields"]:
            return form["fields"]["csrf_token"]
    raise AssertionError("no csrf_token in the page")


def submit(client, url: str, data: dict, form_index: int = 0, **kwargs):  # noqa: ANN001, ANN201
    """GET ``url``, fill form ``form_index`` with ``data`` over its defaults, POST it."""
    page = client.get(url, **kwargs)
    assert page.status_code == 200, f"GET {url} gave {page.status_code}"
    form = parse_forms(page.get_data(as_text=True))[form_index]
    fields = {**form["fields"], **data}
    action = form["action"] or url
    return client.post(action, data=fields, **kwargs)
