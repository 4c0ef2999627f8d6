"""/metrics: Prometheus text, protected; counters from committed audit events."""

from __future__ import annotations

import re

import pytest
from prometheus_client import REGISTRY

from servicekonto.audit.service import record
from servicekonto.audit.tags import AuditTag


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_from_loopback(client):
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.get_data(as_text=True)
    assert "servicekonto_http_request_duration_seconds_bucket" in text
    assert 'endpoint="health.healthz"' in text


def test_metrics_refused_from_other_networks(client):
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert response.status_code == 404
    assert "servicekonto_" not in response.get_data(as_text=True)


@pytest.fixture
def settings_overrides(request):
    if "token" in request.node.name:
        return {"metrics_token": "scrape-token-0123456789"}
    return {}


def test_metrics_with_bearer_token(client):
    remote = {"REMOTE_ADDR": "203.0.113.7"}
    ok = client.get("/metrics", environ_base=remote,
                    headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert ok.status_code == 200
    wrong = client.get("/metrics", environ_base=remote,
                       headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 404


def test_latency_is_labelled_by_endpoint_not_path(client):
    before = value("servicekonto_http_request_duration_seconds_count",
                   endpoint="unmatched", method="GET", status="404")
    client.get("/no/such/page/12345")
    after = value("servicekonto_http_request_duration_seconds_count",
                  endpoint="unmatched", method="GET", status="404")
    assert after == before + 1
    exposition = client.get("/metrics").get_data(as_text=True)
    assert "/no/such/page" not in exposition  # no label holds the raw path
    assert not re.search(r'="[^"]*12345[^"]*"', exposition)


def test_business_counters_count_committed_audit_events_only(app):
    from servicekonto.db import db

    logins = value("servicekonto_logins_total", outcome="success")
    tokens = value("servicekonto_tokens_issued_total", grant="client_credentials")
    consent = value("servicekonto_consent_decisions_total", decision="withdrawn")
    with app.app_context():
        record(db.session, AuditTag.ACCOUNT_LOGIN_SUCCESS, actor="citizen:1")
        record(db.session, AuditTag.OIDC_TOKEN_ISSUED, actor="client:x",
               details={"grant_type": "client_credentials"})
        db.session.commit()
        record(db.session, AuditTag.CONSENT_WITHDRAWN, actor="citizen:1")
        db.session.flush()
        db.session.rollback()  # not committed: not counted
    assert value("servicekonto_logins_total", outcome="success") == logins + 1
    assert value("servicekonto_tokens_issued_total", grant="client_credentials") == tokens + 1
    assert value("servicekonto_consent_decisions_total", decision="withdrawn") == consent


def test_server_errors_are_counted(app):
    from werkzeug.exceptions import InternalServerError

    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/_boom")
    def boom():
        raise InternalServerError()

    before = value("servicekonto_errors_total", kind="http_500")
    assert app.test_client().get("/_boom").status_code == 500
    assert value("servicekonto_errors_total", kind="http_500") == before + 1
