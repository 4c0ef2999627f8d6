"""Logging: one line per record with the request id; no personal data in messages.

``log_format = "text"`` (default, for people) or ``"json"`` (one JSON object per line, for log
shippers)::

    {"ts": "2026-11-23T01:02:03.456Z", "level": "WARNING", "logger": "servicekonto.health",
     "message": "redis unavailable ...", "request_id": "3f2a...", "pid": 4711}

``request_id`` comes from the incoming ``X-Request-ID`` header when it is well-formed (nginx
sets it, see config/nginx.example.conf) or is generated per request (servicekonto/web.py), and
is returned in the response's ``X-Request-ID``. Exceptions add ``exc_type`` and ``exc`` (the
traceback, in the log only; never in a response). Messages must not contain personal data
(e-mail addresses, names, tokens): the audit log is the place for who-did-what, by id.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os

from flask import g, has_request_context

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; keys: ts, level, logger, message, request_id, pid [, exc]."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "pid": os.getpid(),
        }
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(level: str, log_format: str = "text") -> None:
    """Install (once per process) or update the root handler."""
    if log_format not in FORMATS:
        raise ValueError(f"log_format must be one of {FORMATS}, got {log_format!r}")
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "_servicekonto", False):
            if getattr(handler, "_servicekonto_format", None) != log_format:
                handler.setFormatter(_formatter(log_format))
                handler._servicekonto_format = log_format  # type: ignore[attr-defined]
            root.setLevel(level)
            return
    handler = logging.StreamHandler()
    handler._servicekonto = True  # type: ignore[attr-defined]
    handler._servicekonto_format = log_format  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(_formatter(log_format))
    root.addHandler(handler)
    root.setLevel(level)
