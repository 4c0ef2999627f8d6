"""The ``servicekonto`` console script, run as a real subprocess against a fresh database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import DATABASE_URL, ON_POSTGRES
from tests.support.databases import temporary_postgres_database

SCRIPT = Path(sys.executable).parent / "servicekonto"
PASSWORD = "Lindenblüte-Wasserkocher-77"


@pytest.fixture(scope="module")
def cli_database(tmp_path_factory) -> Iterator[str]:
    """An empty database of the pass's kind (no migrations applied yet)."""
    if ON_POSTGRES:
        with temporary_postgres_database(DATABASE_URL) as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('cli') / 'cli.db'}"


@pytest.fixture(scope="module")
def instance(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli-instance")


def cli_env(database_url: str, instance: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SERVICEKONTO_") and k != "DATABASE_URL"}
    env.update({
        "SERVICEKONTO_ENV": "testing",
        "SERVICEKONTO_DATABASE_URL": database_url,
        "SERVICEKONTO_INSTANCE_PATH": str(instance),
        "SERVICEKONTO_LOG_LEVEL": "WARNING",
        "SERVICEKONTO_ARGON2_MEMORY_KIB": "8192",
        "SERVICEKONTO_ARGON2_TIME_COST": "1",
        "SERVICEKONTO_RSA_KEY_BITS": "2048",
    })
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str], stdin: str | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=120, cwd=cwd)


@pytest.fixture(scope="module")
def env(cli_database, instance) -> dict[str, str]:
    environment = cli_env(cli_database, instance)
    result = run(["db", "upgrade"], environment)
    assert result.returncode == 0, result.stderr
    assert "database at revision" in result.stdout
    return environment


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_script_is_installed():
    assert SCRIPT.exists(), "pip install -e . installs the console script into .venv/bin"


@pytest.mark.parametrize("args", [
    [], ["db"], ["db", "upgrade"], ["db", "current"], ["users"], ["users", "create"],
    ["users", "list"], ["users", "disable"], ["users", "enable"], ["audit"],
    ["audit", "verify"], ["audit", "seal"], ["sessions", "purge"], ["serve"], ["seed"],
])
def test_help(args, tmp_path):
    # --help works even with a broken configuration: it never builds the app.
    broken = {**os.environ, "SERVICEKONTO_CONFIG": str(tmp_path / "missing.toml")}
    result = run([*args, "--help"], broken)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: servicekonto")
    assert result.stderr == ""


def test_users_create_help_names_its_options(tmp_path):
    result = run(["users", "create", "--help"], dict(os.environ))
    for option in ("--email", "--given-name", "--family-name", "--verified",
                   "--password-stdin"):
        assert option in result.stdout


def test_db_upgrade_is_idempotent_and_current_matches(env):
    again = run(["db", "upgrade"], env)
    assert again.returncode == 0, again.stderr
    current = run(["db", "current"], env)
    assert current.returncode == 0, current.stderr
    lines = dict(line.split(": ", 1) for line in current.stdout.splitlines())
    assert lines["current"] == lines["head"]


def test_users_create_list_disable(env):
    created = run(["users", "create", "--email", "Erika.Muster@Example.org",
                   "--given-name", "Erika", "--family-name", "Muster", "--verified",
                   "--password-stdin"], env, stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    assert "<erika.muster@example.org> (verified)" in created.stdout

    second = run(["users", "create", "--email", "max@example.org", "--given-name", "Max",
                  "--family-name", "Mustermann", "--password-stdin"], env,
                 stdin=PASSWORD + "-2\n")
    assert second.returncode == 0, second.stderr

    listed = run(["users", "list"], env)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    by_email = {row[1]: row for row in rows}
    assert by_email["erika.muster@example.org"][2] == "verified"
    assert by_email["max@example.org"][2] == "unverified"
    assert by_email["erika.muster@example.org"][3] == "Erika Muster"

    as_json = run(["users", "list", "--json"], env)
    assert as_json.returncode == 0
    objects = [json.loads(line) for line in as_json.stdout.splitlines()]
    erika = next(o for o in objects if o["email"] == "erika.muster@example.org")
    assert erika["status"] == "verified" and erika["given_name"] == "Erika"
    assert "password" not in json.dumps(objects).lower()

    disabled = run(["users", "disable", "max@example.org"], env)
    assert disabled.returncode == 0, disabled.stderr
    status = {json.loads(line)["email"]: json.loads(line)["status"]
              for line in run(["users", "list", "--json"], env).stdout.splitlines()}
    assert status["max@example.org"] == "disabled"
    enabled = run(["users", "enable", "MAX@example.org"], env)
    assert enabled.returncode == 0, enabled.stderr

    verified = run(["audit", "verify"], env)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("ok: 4 sealed entries verified, 0 not sealed yet")


def test_users_create_refuses_bad_input(env):
    base = ["users", "create", "--given-name", "Anna", "--family-name", "Beispiel",
            "--password-stdin"]
    weak = run([*base, "--email", "anna@example.org"], env, stdin="password123\n")
    assert "too common" in one_line_error(weak)
    short = run([*base, "--email", "anna@example.org"], env, stdin="kurz\n")
    assert "at least" in one_line_error(short)
    invalid = run([*base, "--email", "not-an-address"], env, stdin=PASSWORD + "\n")
    assert "@" in one_line_error(invalid) or "valid" in one_line_error(invalid)
    empty = run([*base, "--email", "anna@example.org"], env, stdin="")
    assert "no password" in one_line_error(empty)

    ok = run([*base, "--email", "anna@example.org"], env, stdin=PASSWORD + "\n")
    assert ok.returncode == 0, ok.stderr
    duplicate = run([*base, "--email", "ANNA@example.org"], env, stdin=PASSWORD + "\n")
    assert "exists" in one_line_error(duplicate)
    missing = run(["users", "create", "--email", "x@example.org", "--password-stdin"], env,
                  stdin=PASSWORD + "\n")
    assert missing.returncode == 2 and "--given-name" in missing.stderr


def test_users_create_prompts_without_password_stdin(env):
    result = run(["users", "create", "--email", "prompt@example.org", "--given-name", "Paula",
                  "--family-name", "Prompt"], env, stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.returncode == 0, result.stderr
    assert "created user" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr  # hidden input is not echoed


def test_users_disable_unknown(env):
    assert "no account" in one_line_error(run(["users", "disable", "nobody@example.org"], env))


def test_audit_verify_reports_tampering(env, cli_database):
    run(["users", "create", "--email", "tamper@example.org", "--given-name", "Theo",
         "--family-name", "Tamper", "--password-stdin"], env, stdin=PASSWORD + "\n")
    assert run(["audit", "verify"], env).returncode == 0
    engine = create_engine(cli_database)
    try:
        with engine.begin() as conn:
            row = conn.execute(text("SELECT chain_seq, details FROM audit_events "
                                    "WHERE chain_seq = 2")).one()
            conn.execute(text("UPDATE audit_events SET details = :d WHERE chain_seq = 2"),
                         {"d": '{"verified":true}' if row.details != '{"verified":true}'
                          else '{"verified":false}'})
        result = run(["audit", "verify"], env)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert "BROKEN at sequence 2" in result.stderr
        assert "1 entries verified before it" in result.stderr
        with engine.begin() as conn:  # put it back for the other tests
            conn.execute(text("UPDATE audit_events SET details = :d WHERE chain_seq = 2"),
                         {"d": row.details})
        assert run(["audit", "verify"], env).returncode == 0
    finally:
        engine.dispose()


def test_audit_seal_catches_up(cli_database, instance, env):
    no_sealing = cli_env(cli_database, instance, SERVICEKONTO_AUDIT_SEAL_AFTER_COMMIT="false")
    created = run(["users", "create", "--email", "late@example.org", "--given-name", "Lena",
                   "--family-name", "Late", "--password-stdin"], no_sealing,
                  stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    pending = run(["audit", "verify"], env)
    assert pending.returncode == 0 and "1 not sealed yet" in pending.stdout
    sealed = run(["audit", "seal"], env)
    assert sealed.returncode == 0 and sealed.stdout.strip() == "sealed 1 entries"
    assert "0 not sealed yet" in run(["audit", "verify"], env).stdout


def test_sessions_purge(env):
    result = run(["sessions", "purge"], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("removed ")


@pytest.mark.parametrize("database_url", [
    "postgresql+psycopg://postgres@127.0.0.1:1/x",
    "sqlite:////nonexistent-folder/really/missing.db",
], ids=["closed-port", "sqlite-missing-folder"])
@pytest.mark.parametrize("args", [["users", "list"], ["db", "upgrade"], ["audit", "verify"]])
def test_unreachable_database_is_one_clear_line(database_url, args, tmp_path):
    line = one_line_error(run(args, cli_env(database_url, tmp_path)))
    assert "database not reachable" in line


def test_missing_database_on_the_server(tmp_path):
    if ON_POSTGRES:
        from sqlalchemy import make_url

        url = make_url(DATABASE_URL).set(database="sk_does_not_exist").render_as_string(
            hide_password=False)
        line = one_line_error(run(["users", "list"], cli_env(url, tmp_path)))
        assert "does not exist" in line
    else:
        empty = f"sqlite:///{tmp_path / 'never-migrated.db'}"
        line = one_line_error(run(["users", "list"], cli_env(empty, tmp_path)))
        assert "not migrated" in line


def test_configuration_errors_are_one_clear_line(tmp_path):
    base = cli_env(f"sqlite:///{tmp_path / 'x.db'}", tmp_path)
    missing = run(["users", "list"], {**base, "SERVICEKONTO_CONFIG": str(tmp_path / "no.toml")})
    assert "config file not found" in one_line_error(missing)
    unknown = run(["users", "list"], {**base, "SERVICEKONTO_COLOUR": "blue"})
    assert "unknown setting 'colour'" in one_line_error(unknown)
    production = run(["users", "list"], {**base, "SERVICEKONTO_ENV": "production"})
    assert "configuration error" in one_line_error(production)


def test_seed_refuses_production(tmp_path):
    env = cli_env(f"sqlite:///{tmp_path / 'x.db'}", tmp_path,
                  SERVICEKONTO_ENV="production", SERVICEKONTO_SECRET_KEY="s" * 40,
                  SERVICEKONTO_ISSUER="https://konto.example.org",
                  SERVICEKONTO_MAIL_SMTP_HOST="mail.example.org",
                  SERVICEKONTO_KEY_ENCRYPTION_KEY="a2V5LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGVzLWxvbmc=",
                  SERVICEKONTO_PAIRWISE_SALT="p" * 40,
                  SERVICEKONTO_ARGON2_MEMORY_KIB="19456", SERVICEKONTO_ARGON2_TIME_COST="2",
                  SERVICEKONTO_RSA_KEY_BITS="3072")
    assert "not production" in one_line_error(run(["seed"], env))


def test_unknown_command(env):
    result = run(["frobnicate"], env)
    assert result.returncode == 2
    assert "No such command" in result.stderr


def test_seed_is_idempotent_and_keeps_credentials_private(env, instance):
    first = run(["seed"], env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("demo citizen: erika.mustermann@example.org / password: ")
    credentials = instance / "demo-credentials.json"
    assert credentials.stat().st_mode & 0o777 == 0o600
    again = run(["seed"], env)
    assert again.returncode == 0 and again.stdout == first.stdout
    listed = run(["users", "list", "--json"], env).stdout
    assert listed.count("erika.mustermann@example.org") == 1


def test_serve_runs_the_development_server(env):
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([str(SCRIPT), "serve", "--port", str(port)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    assert response.status == 200
                    assert response.headers["Content-Security-Policy"]
                    break
            except OSError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "serve did not answer within 30 s"
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert f"http://127.0.0.1:{port}/" in process.stdout.read()
