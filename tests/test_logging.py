"""Logs: text or JSON lines, with the request id; the response carries the same id."""

from __future__ import annotations

import io
import json
import logging

import pytest

from servicekonto.logging_setup import JsonFormatter, RequestIdFilter, configure_logging
from servicekonto.settings import SettingsError, load_settings


@pytest.fixture
def lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("servicekonto.test_logging")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, stream
    logger.removeHandler(handler)


def test_json_lines_carry_the_incoming_request_id(app, lines):
    logger, stream = lines

    @app.get("/_log")
    def _log():
        logger.warning("something happened to client %s", "portal-7")
        return "ok"

    response = app.test_client().get("/_log", headers={"X-Request-ID": "req-abc.123"})
    assert response.headers["X-Request-ID"] == "req-abc.123"
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["request_id"] == "req-abc.123"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "servicekonto.test_logging"
    assert entry["message"] == "something happened to client portal-7"
    assert entry["ts"].endswith("Z") and isinstance(entry["pid"], int)


def test_json_lines_generate_a_request_id_for_bad_ones(app, lines):
    logger, stream = lines

    @app.get("/_log")
    def _log():
        logger.warning("x")
        return "ok"

    response = app.test_client().get("/_log", headers={"X-Request-ID": "bad id <script>"})
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["request_id"] == response.headers["X-Request-ID"] != "bad id <script>"


def test_json_exception_is_one_line_with_type(lines):
    logger, stream = lines
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed")
    text = stream.getvalue()
    assert len(text.strip().splitlines()) == 1
    entry = json.loads(text)
    assert entry["exc_type"] == "RuntimeError" and "Traceback" in entry["exc"]
    assert entry["request_id"] == "-"


def test_log_format_setting_is_validated():
    with pytest.raises(SettingsError, match="log_format"):
        load_settings({"env": "testing", "log_format": "xml"}, environ={})
    assert load_settings({"env": "testing", "log_format": "json"},
                         environ={})["log_format"] == "json"


def test_configure_logging_switches_the_format_of_its_handler():
    root = logging.getLogger()
    level = root.level
    try:
        configure_logging("WARNING", "json")
        ours = [h for h in root.handlers if getattr(h, "_servicekonto", False)]
        assert len(ours) == 1 and isinstance(ours[0].formatter, JsonFormatter)
        configure_logging("WARNING", "text")
        ours = [h for h in root.handlers if getattr(h, "_servicekonto", False)]
        assert len(ours) == 1 and not isinstance(ours[0].formatter, JsonFormatter)
    finally:
        root.setLevel(level)
