"""Request plumbing on every page: security headers, request ids, language choice."""

from __future__ import annotations

import re

import pytest

from servicekonto import create_app
from tests.conftest import base_settings

PRODUCTION = {
    "env": "production",
    "secret_key": "production-secret-key-0123456789-abcdef",
    "issuer": "https://konto.example.org",
    "session_cookie_secure": True,
    "allow_loopback_http": False,
    "rsa_key_bits": 3072,
    "key_encryption_key": "a2V5LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGVzLWxvbmc=",
    "pairwise_salt": "pairwise-salt-0123456789-abcdefghijklmnop",
}


@pytest.fixture
def production_client(migrated_database, tmp_path, mailbox):
    app = create_app({**base_settings(migrated_database, tmp_path / "instance", mailbox),
                      **PRODUCTION})
    assert app.config["SERVICEKONTO"]["env"] == "production"
    return app.test_client()


def csp_directives(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


@pytest.mark.parametrize("path", ["/", "/does-not-exist"])
def test_security_headers_on_html(client, path):
    response = client.get(path)
    assert response.mimetype == "text/html"
    directives = csp_directives(response)
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response.headers["Content-Security-Policy"]
    assert directives["script-src"] == "script-src 'self'"
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert directives["object-src"] == "object-src 'none'"
    assert directives["default-src"] == "default-src 'self'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Strict-Transport-Security" not in response.headers  # not outside production


def test_pages_have_no_inline_script(client):
    html = client.get("/").get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers


def test_static_files_get_nosniff(client):
    response = client.get("/static/style.css")
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_hsts_in_production(production_client):
    response = production_client.get("/", base_url="https://konto.example.org")
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_request_id_is_echoed_or_generated(client):
    echoed = client.get("/", headers={"X-Request-ID": "abc-123.DEF_4"})
    assert echoed.headers["X-Request-ID"] == "abc-123.DEF_4"
    generated = client.get("/", headers={"X-Request-ID": "not valid <script>"})
    assert re.fullmatch(r"[0-9a-f]{16}", generated.headers["X-Request-ID"])
    plain = client.get("/")
    assert re.fullmatch(r"[0-9a-f]{16}", plain.headers["X-Request-ID"])
    assert plain.headers["X-Request-ID"] != generated.headers["X-Request-ID"]
    too_long = client.get("/", headers={"X-Request-ID": "a" * 200})
    assert too_long.headers["X-Request-ID"] != "a" * 200


def test_language_choice(client):
    assert 'lang="de"' in client.get("/").get_data(as_text=True)
    english = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert 'lang="en"' in english.get_data(as_text=True)
    unknown = client.get("/", headers={"Accept-Language": "fr"})
    assert 'lang="de"' in unknown.get_data(as_text=True)
    # ?lang= wins over Accept-Language and is remembered.
    client.get("/?lang=en", headers={"Accept-Language": "de"})
    assert 'lang="en"' in client.get("/", headers={"Accept-Language": "de"}).get_data(
        as_text=True)
    assert 'lang="de"' in client.get("/?lang=de").get_data(as_text=True)
    ignored = client.get("/?lang=xx", headers={"Accept-Language": "de"})
    assert 'lang="de"' in ignored.get_data(as_text=True)


def test_start_page_is_translated(client):
    german = client.get("/").get_data(as_text=True)
    english = client.get("/?lang=en").get_data(as_text=True)
    assert "Zum Inhalt springen" in german and "Skip to content" in english


def test_templates_need_no_inline_script_or_style():
    """The CSP forbids inline script and style; no template may rely on them."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    offenders = []
    for folder in (root / "servicekonto", root / "oidc"):
        for template in folder.rglob("templates/**/*.html"):
            html = template.read_text()
            if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) or re.search(
                    r"<style\b|\sstyle=\"|\son[a-z]+=\"", html):
                offenders.append(str(template.relative_to(root)))
    assert not offenders, offenders


def test_ensure_sync_is_remembered_per_function(app):
    def view():
        return "x"

    first = app.ensure_sync(view)
    assert app.ensure_sync(view) is first
    assert first() == "x"


def test_headers_a_view_sets_itself_are_kept(app):
    @app.route("/_own_headers")
    def own_headers():
        return "x", 200, {"X-Frame-Options": "SAMEORIGIN", "Cache-Control": "max-age=60",
                          "Content-Type": "text/html; charset=utf-8"}

    response = app.test_client().get("/_own_headers")
    assert response.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert response.headers.getlist("Cache-Control") == ["max-age=60"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response.headers
    assert response.headers["X-Request-ID"]
