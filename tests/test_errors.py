"""Every error is a clear page (or JSON), never a stack trace; real faults are logged."""

from __future__ import annotations

import logging

import pytest
from flask import abort
from sqlalchemy import text

from servicekonto import create_app
from servicekonto.errors import ServicekontoError, TooManyAttempts
from tests.conftest import base_settings


def body(response) -> str:
    return response.get_data(as_text=True)


def assert_no_trace(response) -> None:
    text_ = body(response)
    assert "Traceback" not in text_
    assert 'File "' not in text_
    assert "sqlalchemy" not in text_.lower()


def test_404_in_german_by_default(client):
    response = client.get("/nirgendwo")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    html = body(response)
    assert 'lang="de"' in html
    assert "Seite nicht gefunden" in html
    assert "Zur Startseite" in html
    assert response.headers["X-Request-ID"] in html  # support reference
    assert response.headers["Cache-Control"] == "no-store"


def test_404_in_english(client):
    for response in (client.get("/nowhere?lang=en"),
                     client.get("/nowhere", headers={"Accept-Language": "en"})):
        assert response.status_code == 404
        html = body(response)
        assert "Page not found" in html and 'lang="en"' in html


def test_404_as_json(client):
    response = client.get("/nowhere", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.is_json
    assert response.get_json()["error"] == "not_found"
    assert response.get_json()["error_description"]


def test_browsers_get_html_even_if_they_also_accept_json(client):
    response = client.get("/nowhere", headers={
        "Accept": "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8"})
    assert response.mimetype == "text/html"


def test_405_with_allow_header(client):
    response = client.post("/")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert "Methode nicht erlaubt" in body(response)
    json_response = client.delete("/", headers={"Accept": "application/json"})
    assert json_response.status_code == 405
    assert json_response.get_json()["error"] == "method_not_allowed"


@pytest.fixture
def app(app):
    def form_sink() -> str:
        from flask import request

        return str(len(request.form))

    def explode() -> str:
        raise RuntimeError("secret internal detail 4711")

    def query_database() -> str:
        from servicekonto.db import db

        return str(db.session.execute(text("SELECT 1")).scalar())

    def domain_error() -> str:
        raise ServicekontoError("Diese Aktion ist nicht möglich.")

    def throttled() -> str:
        raise TooManyAttempts(42)

    def forbidden() -> str:
        abort(403)

    app.add_url_rule("/_test/form", "test_form", form_sink, methods=["POST"])
    app.add_url_rule("/_test/explode", "test_explode", explode)
    app.add_url_rule("/_test/db", "test_db", query_database)
    app.add_url_rule("/_test/domain", "test_domain", domain_error)
    app.add_url_rule("/_test/throttled", "test_throttled", throttled)
    app.add_url_rule("/_test/forbidden", "test_forbidden", forbidden)
    return app


def test_413_for_oversized_bodies(client):
    response = client.post("/_test/form", data={"blob": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413
    assert "zu groß" in body(response)
    assert_no_trace(response)


def test_unexpected_exception_gives_500_page_and_is_logged(client, caplog):
    with caplog.at_level(logging.ERROR):
        response = client.get("/_test/explode", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert_no_trace(response)
    assert "secret internal detail" not in body(response)
    assert "req-500" in body(response)
    assert "Interner Fehler" in body(response)
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert logged and logged[0].exc_info is not None
    assert "RuntimeError" in caplog.text and "secret internal detail 4711" in caplog.text


def test_500_as_json(client):
    response = client.get("/_test/explode", headers={"Accept": "application/json"})
    assert response.status_code == 500
    assert response.get_json() == {
        "error": "server_error", "error_description": response.get_json()["error_description"]}
    assert "4711" not in body(response)


def test_domain_errors_and_throttling(client):
    response = client.get("/_test/domain")
    assert response.status_code == 400
    assert "Diese Aktion ist nicht möglich." in body(response)
    throttled = client.get("/_test/throttled", headers={"Accept": "application/json"})
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "42"
    assert throttled.get_json()["error"] == "too_many_requests"
    assert client.get("/_test/forbidden").status_code == 403


def test_csrf_failure_is_a_clear_400(migrated_database, tmp_path, mailbox):
    app = create_app({**base_settings(migrated_database, tmp_path, mailbox)})
    app.add_url_rule("/_test/form", "test_form", lambda: "ok", methods=["POST"])
    response = app.test_client().post("/_test/form", data={"x": "1"})
    assert response.status_code == 400
    assert "Formular" in body(response)


def down_app(database_url: str, tmp_path, mailbox):
    app = create_app({**base_settings(database_url, tmp_path / "instance", mailbox)})

    def query_database() -> str:
        from servicekonto.db import db

        return str(db.session.execute(text("SELECT 1")).scalar())

    app.add_url_rule("/_test/db", "test_db", query_database)
    return app


@pytest.mark.parametrize("database_url", [
    "postgresql+psycopg://postgres@127.0.0.1:1/x",
    "sqlite:////nonexistent-folder/really/missing.db",
], ids=["closed-port", "sqlite-missing-folder"])
def test_database_down_gives_503(database_url, tmp_path, mailbox, caplog):
    app = down_app(database_url, tmp_path, mailbox)
    client = app.test_client()
    with caplog.at_level(logging.ERROR):
        response = client.get("/_test/db")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "Vorübergehend nicht verfügbar" in body(response)
    assert_no_trace(response)
    assert "database unavailable" in caplog.text

    # A session cookie makes the session store (the database) necessary for every page.
    client.set_cookie("sk_session", "a-session-token")
    page = client.get("/")
    assert page.status_code == 503 and page.headers["Retry-After"]
    assert_no_trace(page)
    json_response = client.get("/_test/db", headers={"Accept": "application/json"})
    assert json_response.status_code == 503
    assert json_response.get_json()["error"] == "temporarily_unavailable"


def test_pages_without_the_database_still_work_when_it_is_down(tmp_path, mailbox):
    app = down_app("postgresql+psycopg://postgres@127.0.0.1:1/x", tmp_path, mailbox)
    client = app.test_client()
    assert client.get("/").status_code == 200
    assert client.get("/nowhere").status_code == 404


def test_session_store_failing_on_save_gives_503(app, caplog):
    """A store that fails while the response is finalised: 503, not a 500 or a trace."""
    from sqlalchemy.exc import OperationalError

    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production (tests propagate by default)
    store = app.extensions["servicekonto.session_store"]

    def down(_record) -> None:
        raise OperationalError("INSERT INTO web_sessions", {}, Exception("connection lost"))

    store.save = down
    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/?lang=en")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert_no_trace(response)
    assert "Request finalizing failed" not in caplog.text  # the error page saved nothing


def test_fault_outside_the_view_gives_500_and_is_logged(app, caplog):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    store = app.extensions["servicekonto.session_store"]

    def broken(_record) -> None:
        raise RuntimeError("bug while saving 0815")

    store.save = broken
    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/?lang=en")
    assert response.status_code == 500
    assert_no_trace(response)
    assert "0815" not in body(response)
    assert "bug while saving 0815" in caplog.text  # logged with its traceback
