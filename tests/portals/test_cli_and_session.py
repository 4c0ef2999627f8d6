"""The ``orgs`` and ``operators`` commands; the operator session's idle and absolute limits."""

from __future__ import annotations

import json

from servicekonto.audit.tags import AuditTag
from servicekonto.portals import auth
from servicekonto.portals.cli import operators, orgs
from tests.portals.conftest import PASSWORD, audit_tags, login, make_operator, make_org, operator


def test_orgs_and_operators_commands(app):
    runner = app.test_cli_runner()
    made = runner.invoke(orgs, ["create", "Stadt Musterstadt"])
    assert made.exit_code == 0, made.output
    again = runner.invoke(orgs, ["create", "Stadt Musterstadt"])
    assert again.exit_code != 0 and "exists already" in again.output
    listed = runner.invoke(orgs, ["list", "--json"])
    assert json.loads(listed.output.splitlines()[0])["name"] == "Stadt Musterstadt"

    created = runner.invoke(operators, ["create", "--email", "anna@musterstadt.de", "--name",
                                        "Anna Amt", "--org", "Stadt Musterstadt",
                                        "--password-stdin"], input=PASSWORD + "\n")
    assert created.exit_code == 0, created.output
    admin = runner.invoke(operators, ["create", "--email", "root@land.example.de", "--name",
                                      "Rita Root", "--admin", "--password-stdin"],
                          input=PASSWORD + "\n")
    assert admin.exit_code == 0, admin.output
    no_org = runner.invoke(operators, ["create", "--email", "x@musterstadt.de", "--name", "X",
                                       "--password-stdin"], input=PASSWORD + "\n")
    assert no_org.exit_code != 0
    unknown_org = runner.invoke(operators, ["create", "--email", "y@musterstadt.de", "--name",
                                            "Y", "--org", "Nirgendwo", "--password-stdin"],
                                input=PASSWORD + "\n")
    assert unknown_org.exit_code != 0 and "no organisation" in unknown_org.output
    weak = runner.invoke(operators, ["create", "--email", "z@musterstadt.de", "--name", "Z",
                                     "--org", "Stadt Musterstadt", "--password-stdin"],
                         input="kurz\n")
    assert weak.exit_code != 0

    rows = [json.loads(line) for line in
            runner.invoke(operators, ["list", "--json"]).output.splitlines()]
    assert {(r["email"], r["role"], r["status"]) for r in rows} == {
        ("anna@musterstadt.de", "operator", "totp-not-enrolled"),
        ("root@land.example.de", "admin", "totp-not-enrolled")}

    assert runner.invoke(operators, ["reset-totp", "anna@musterstadt.de"]).exit_code == 0
    assert runner.invoke(operators, ["disable", "anna@musterstadt.de"]).exit_code == 0
    assert runner.invoke(operators, ["disable", "nobody@musterstadt.de"]).exit_code != 0
    tags = audit_tags(app)
    for tag in (AuditTag.ORGANISATION_CREATED, AuditTag.OPERATOR_CREATED,
                AuditTag.OPERATOR_TOTP_RESET, AuditTag.OPERATOR_DISABLED):
        assert tag in tags


def test_reset_totp_means_enrolling_again(app, client):
    op_id = make_operator(app, make_org(app))
    login(client, app, op_id)
    assert operator(app, op_id).totp_confirmed_at is not None
    runner = app.test_cli_runner()
    assert runner.invoke(operators, ["reset-totp", operator(app, op_id).email]).exit_code == 0
    other = app.test_client()
    login(other, app, op_id)  # enrols again (a new secret)
    assert operator(app, op_id).totp_confirmed_at is not None


def test_disabled_operator_session_ends(app, client):
    op_id = make_operator(app, make_org(app))
    login(client, app, op_id)
    runner = app.test_cli_runner()
    assert runner.invoke(operators, ["disable", operator(app, op_id).email]).exit_code == 0
    assert client.get("/operators/").status_code == 302


def test_idle_and_absolute_limits(app, client, monkeypatch):
    op_id = make_operator(app, make_org(app))
    login(client, app, op_id)
    real = auth.time.time
    start = real()
    monkeypatch.setattr(auth.time, "time", lambda: start + 29 * 60)
    assert client.get("/operators/").status_code == 200  # activity moves the idle limit
    monkeypatch.setattr(auth.time, "time", lambda: start + 58 * 60)
    assert client.get("/operators/").status_code == 200
    monkeypatch.setattr(auth.time, "time", lambda: start + 89 * 60)
    gone = client.get("/operators/")
    assert gone.status_code == 302 and "expired=1" in gone.headers["Location"]

    monkeypatch.setattr(auth.time, "time", real)
    login(client, app, op_id)
    start = real()
    for minutes in range(25, 125, 25):  # active all along, but 2 h is the end
        monkeypatch.setattr(auth.time, "time", lambda m=minutes: start + m * 60)
        assert client.get("/operators/").status_code == 200, minutes
    monkeypatch.setattr(auth.time, "time", lambda: start + 2 * 3600 + 60)
    assert client.get("/operators/").status_code == 302
