"""The benchmark suite (``make bench``): every hot path against a running server with a warm
database, on SQLite and on PostgreSQL; results as Markdown in bench/results/.

CPU split (2 cores): the server (gunicorn) is pinned to core 0 with ``taskset -c 0``, wrk to
core 1. PostgreSQL (a local server) is pinned to wrk's core while the suite runs (``make
bench``; ``--database-cpu none`` leaves it on both cores), so it never takes CPU from the
server's core, as on a separate database machine; noted in the results.

Usage: ``python bench/run.py [--db sqlite|postgres|both] [--duration 10] [--quick]``.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
TMP = BENCH / "tmp"
LUA = BENCH / "lua"
RESULTS = BENCH / "results"
VENV_BIN = Path(sys.executable).parent
PG_SERVER = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PASSWORD = "Sonnenblume-Wiesbaden-42"
SERVER_CPU = os.environ.get("BENCH_SERVER_CPU", "0")
LOAD_CPU = os.environ.get("BENCH_LOAD_CPU", "1")
#: One worker process on the one server core (config/gunicorn.conf.py: workers = cores), its
#: threads overlapping database round trips. Two processes on one core cost more CPU per
#: request (context switches, two sets of caches) and let two Argon2id hashes thrash one
#: core's caches; measured in docs/performance.md ("Server set-up").
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
THREADS = int(os.environ.get("BENCH_THREADS_PER_WORKER", "8"))
WRK_THREADS = 1
#: gunicorn (gthread, the baseline) or granian (Rust HTTP server, WSGI interface).
SERVER_KIND = os.environ.get("BENCH_SERVER", "gunicorn")
#: gunicorn's worker class (gthread, the baseline; sync for comparison: no keep-alive).
GUNICORN_CLASS = os.environ.get("BENCH_GUNICORN_CLASS", "gthread")
WRK_CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
LOGIN_CONNECTIONS = int(os.environ.get("BENCH_LOGIN_CONNECTIONS", "4"))
#: ``--time-hash``: the suite's server runs bench/timed_hash_app.py (wsgi:app with the Argon2id
#: verifies timed inside the server), so the login's CPU beside its hash is measured directly.
APP = {"module": "wsgi:app"}

sys.path.insert(0, str(ROOT))

TARGETS = {  # scenario -> (target, unit) ; login is relative to the Argon2id ceiling
    "login": (0.8, "x Argon2id ceiling"),
    "flow_es256": (250, "flows/s"),
    "client_credentials": (1000, "req/s"),
    "refresh": (500, "req/s"),
    "userinfo": (1000, "req/s"),
    "introspection": (1000, "req/s"),
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def have_taskset() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def pinned(cpu: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if have_taskset() else argv


#: Where the local PostgreSQL server's processes ran during the suite (for the results file).
DATABASE_PINNING = {"note": "PostgreSQL unpinned (shares both cores)"}


@contextmanager
def database_on_cpu(cpu: str):
    """Pin the local PostgreSQL server's processes (postmaster and backends; new backends
    inherit the postmaster's mask) to ``cpu`` for the suite, and restore their masks after.
    Needs the right to change those processes' affinity (root, or the postgres user); without
    it, or without a local server, the database stays unpinned and the results say so."""
    if cpu in ("", "none") or not have_taskset():
        yield
        return
    pids = [int(p) for p in subprocess.run(["pgrep", "-x", "postgres"], capture_output=True,
                                           text=True).stdout.split()]
    saved: dict[int, set[int]] = {}

    def restore() -> None:
        for pid, mask in saved.items():
            try:
                os.sched_setaffinity(pid, mask)
            except (ProcessLookupError, OSError):
                pass  # a backend that ended meanwhile

    try:
        for pid in pids:
            saved[pid] = os.sched_getaffinity(pid)
            os.sched_setaffinity(pid, {int(cpu)})
    except (PermissionError, ProcessLookupError, OSError) as exc:
        restore()  # all or nothing: what the results file says must be what ran
        saved.clear()
        log(f"PostgreSQL not pinned ({exc}); it shares both cores")
    if saved:
        DATABASE_PINNING["note"] = (f"PostgreSQL (local, {len(saved)} processes) pinned to "
                                    f"core {cpu} with wrk")
    try:
        yield
    finally:
        restore()


# -- databases ----------------------------------------------------------------------------------

@contextmanager
def database(kind: str):
    if kind == "sqlite":
        TMP.mkdir(parents=True, exist_ok=True)
        path = TMP / f"bench_{secrets.token_hex(4)}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
        return
    from sqlalchemy import create_engine, make_url, text

    url = make_url(PG_SERVER)
    name = f"bench_{secrets.token_hex(5)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pg_reachable() -> bool:
    try:
        import psycopg

        url = PG_SERVER.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001
        return False


# -- settings, seeding --------------------------------------------------------------------------

def settings_for(url: str, port: int, extra: dict[str, Any] | None = None) -> dict[str, str]:
    """SERVICEKONTO_* environment for the server (and the seeding app)."""
    instance = TMP / "instance"
    instance.mkdir(parents=True, exist_ok=True)
    env = {
        "SERVICEKONTO_ENV": "development",
        "SERVICEKONTO_DEBUG": "false",
        "SERVICEKONTO_LOG_LEVEL": "WARNING",
        "SERVICEKONTO_DATABASE_URL": url,
        "SERVICEKONTO_INSTANCE_PATH": str(instance),
        "SERVICEKONTO_SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnop",
        "SERVICEKONTO_ISSUER": f"http://127.0.0.1:{port}",
        "SERVICEKONTO_SESSION_COOKIE_SECURE": "false",
        "SERVICEKONTO_ALLOW_LOOPBACK_HTTP": "true",
        "SERVICEKONTO_MAIL_OUTBOX_DIR": str(TMP / "outbox"),
        "SERVICEKONTO_DATABASE_POOL_SIZE": str(THREADS + 2),
    }
    for key, value in (extra or {}).items():
        env[f"SERVICEKONTO_{key.upper()}"] = str(value).lower() if isinstance(value, bool) \
            else str(value)
    return env


@contextmanager
def environment(env: dict[str, str]):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def seed(env: dict[str, str]) -> dict[str, Any]:
    """Migrate; a verified citizen; ES256 and RS256 portals; a client_credentials service."""
    from sqlalchemy import create_engine

    from servicekonto.migrate import upgrade

    engine = create_engine(env["SERVICEKONTO_DATABASE_URL"])
    upgrade(engine)
    engine.dispose()
    with environment(env):
        from oidc.clients import create_client
        from servicekonto import create_app
        from servicekonto.accounts.services import create_user
        from servicekonto.db import db

        app = create_app()
        out: dict[str, Any] = {"settings": app.config["SERVICEKONTO"]}
        with app.app_context():
            create_user(db.session, email="erika@example.org", password=PASSWORD,
                        given_name="Erika", family_name="Mustermann", verified=True)
            for alg in ("ES256", "RS256"):
                uri = f"http://127.0.0.1:9/cb/{alg.lower()}"
                client, secret = create_client(
                    db.session, name=f"Bench {alg}", redirect_uris=[uri],
                    scope="openid profile email offline_access",
                    auth_method="client_secret_basic",
                    grant_types=["authorization_code", "refresh_token"],
                    id_token_signed_response_alg=alg)
                out[alg] = {"client_id": client.client_id, "secret": secret,
                            "redirect_uri": uri}
            client, secret = create_client(
                db.session, name="Bench service", redirect_uris=[], scope="bench.read",
                auth_method="client_secret_basic", grant_types=["client_credentials"])
            out["service"] = {"client_id": client.client_id, "secret": secret}
            db.session.commit()
        app.extensions["servicekonto.db"].engine.dispose()
        return out


def basic(client: dict[str, Any]) -> str:
    raw = f"{quote(client['client_id'], safe='')}:{quote(client['secret'], safe='')}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


# -- the server ---------------------------------------------------------------------------------

class Server:
    def __init__(self, env: dict[str, str], port: int, app: str = "") -> None:
        app = app or APP["module"]
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        if SERVER_KIND == "granian":
            argv = [str(VENV_BIN / "granian"), "--interface", "wsgi", "--workers", str(WORKERS),
                    "--blocking-threads", str(THREADS), "--runtime-threads", "1",
                    "--host", "127.0.0.1", "--port", str(port), "--backlog", "2048",
                    "--no-ws", "--log-level", "warning", app]
        else:
            argv = [str(VENV_BIN / "gunicorn"), "-k", GUNICORN_CLASS, "-w", str(WORKERS),
                    "--threads", str(THREADS), "-b", f"127.0.0.1:{port}", "--backlog", "2048",
                    "--log-level", "warning", app]
        self.command = " ".join(pinned(SERVER_CPU, argv))
        self.proc = subprocess.Popen(pinned(SERVER_CPU, argv), cwd=ROOT,
                                     env={**os.environ, **env}, start_new_session=True,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(TMP / "server.log", "ab"))  # noqa: SIM115
        import requests

        for _ in range(300):
            try:
                requests.get(self.base + "/.well-known/openid-configuration", timeout=2)
                return
            except requests.RequestException:
                if self.proc.poll() is not None:
                    raise RuntimeError("server died; see bench/tmp/server.log") from None
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def cpu_seconds(self) -> float:
        """utime + stime of the gunicorn master and its workers (load-independent cost)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, ppid = int(stat.parent.name), int(fields[1])
            if pid == self.proc.pid or ppid == self.proc.pid:
                total += int(fields[11]) + int(fields[12])
        return total / tick

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def browser_login(base: str, portals: list[dict[str, Any]]) -> Any:
    """Log in once through the forms and consent for each portal (the real code paths)."""
    from tests.oidc.conftest import Browser

    browser = Browser(base)
    email: str | None = "erika@example.org"
    for portal in portals:
        verifier, challenge = pkce()
        url = base + "/authorize?" + urlencode({
            "client_id": portal["client_id"], "response_type": "code",
            "scope": "openid profile email offline_access",
            "redirect_uri": portal["redirect_uri"], "state": "s", "nonce": "n",
            "code_challenge": challenge, "code_challenge_method": "S256"})
        landing = browser.go(url, email=email, password=PASSWORD)
        email = None
        assert "code" in landing.params, (landing.response.status_code, landing.response.text[:500])
    return browser


def mint_tokens(base: str, browser: Any, portal: dict[str, Any], count: int) -> list[dict]:
    """Code flows through HTTP (signed-in citizen with consent): token responses."""
    import requests

    out = []
    http = requests.Session()
    for _ in range(count):
        verifier, challenge = pkce()
        url = base + "/authorize?" + urlencode({
            "client_id": portal["client_id"], "response_type": "code",
            "scope": "openid profile email offline_access",
            "redirect_uri": portal["redirect_uri"], "state": "s", "nonce": "n",
            "code_challenge": challenge, "code_challenge_method": "S256"})
        response = browser.http.get(url, allow_redirects=False, timeout=30)
        code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
        token = http.post(base + "/token", headers={"Authorization": basic(portal)}, data={
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": portal["redirect_uri"], "code_verifier": verifier}, timeout=30)
        token.raise_for_status()
        out.append(token.json())
    return out


def login_pages(base: str, count: int) -> list[str]:
    """Fresh login pages: 'cookie<TAB>form body' lines for the login scenario."""
    import requests

    from tests.support.forms import parse_forms

    lines = []
    for _ in range(count):
        http = requests.Session()
        page = http.get(base + "/login", timeout=30)
        form = parse_forms(page.text)[0]
        fields = {**form["fields"], "email": "erika@example.org", "password": PASSWORD}
        cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
        lines.append(f"{cookie}\t{urlencode(fields)}")
    return lines


# -- wrk ----------------------------------------------------------------------------------------

def wrk(base: str, script: str, duration: int, env: dict[str, str],
        connections: int = WRK_CONNECTIONS, server: Server | None = None) -> dict[str, Any]:
    argv = pinned(LOAD_CPU, ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration}s",
                             "--timeout", "10s", "-s", str(LUA / script), base])
    full_env = {**os.environ, "BENCH_LUA_DIR": str(LUA), "BENCH_THREADS": str(WRK_THREADS),
                **env}
    cpu_before = server.cpu_seconds() if server else 0.0
    done = subprocess.run(argv, env=full_env, capture_output=True, text=True,
                          timeout=duration + 60, check=False)
    cpu_used = server.cpu_seconds() - cpu_before if server else 0.0
    match = re.search(r"^BENCH_JSON (\{.*\})$", done.stdout, re.M)
    if not match:
        raise RuntimeError(f"wrk failed: {done.stdout}\n{done.stderr}")
    result = json.loads(match.group(1))
    first_bad = re.search(r"^BENCH_FIRST_BAD (.*)$", done.stdout, re.M)
    if first_bad:
        result["first_bad"] = first_bad.group(1)[:300]
        log(f"  first unexpected answer: {result['first_bad']}")
    seconds = result["duration_us"] / 1e6
    result["rps"] = result["requests"] / seconds
    result["ok_rps"] = result["ok"] / seconds
    result["flows_per_s"] = result["flows"] / seconds
    result["server_cpu_ms_per_request"] = (1000 * cpu_used / result["requests"]
                                           if server and result["requests"] else 0.0)
    result["errors"] = (result["bad"] + result["connect_errors"] + result["read_errors"]
                        + result["write_errors"] + result["timeouts"])
    return result


# -- ceilings -----------------------------------------------------------------------------------

def timed(fn: Any, n: int) -> float:
    """Median seconds per call over n calls, pinned to the server's core."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


#: Run in a fresh interpreter pinned like the server: one warm-up verify (the first one
#: allocates and faults in the 19 MiB), then ``runs`` x ``n`` verifies; wall and thread-CPU
#: seconds of every verify as JSON on stdout.
_ARGON2_PROBE = """
import json, sys, time
from argon2 import PasswordHasher
a = json.loads(sys.argv[1])
h = PasswordHasher(time_cost=a["t"], memory_cost=a["m"], parallelism=a["p"])
stored = h.hash(a["password"])
h.verify(stored, a["password"])
out = []
for _ in range(a["runs"]):
    run = []
    for _ in range(a["n"]):
        w, c = time.perf_counter(), time.thread_time()
        h.verify(stored, a["password"])
        run.append([time.perf_counter() - w, time.thread_time() - c])
    out.append(run)
print(json.dumps(out))
"""


def argon2_verify_seconds(settings: dict[str, Any], runs: int = 5, n: int = 10,
                          label: str = "") -> dict[str, Any]:
    """The Argon2id ceiling: verify time at the configured parameters on the server's core.

    Measured the way the server hashes: in a separate process pinned with ``taskset -c
    <server core>`` (never in this unpinned bench process, whose caches and scheduling differ),
    ``runs`` repetitions of ``n`` verifies after a warm-up; each run's median, and the median
    of those. Call it while the server is idle (no scenario running). Wall time is what bounds
    the logins per second; CPU time (the hashing thread's) is what a login's server CPU is
    compared with.
    """
    args = {"t": settings["argon2_time_cost"], "m": settings["argon2_memory_kib"],
            "p": settings["argon2_parallelism"], "password": PASSWORD, "runs": runs, "n": n}
    done = subprocess.run(pinned(SERVER_CPU, [sys.executable, "-c", _ARGON2_PROBE,
                                              json.dumps(args)]),
                          capture_output=True, text=True, timeout=600, check=True)
    samples = json.loads(done.stdout)
    wall = [statistics.median(x[0] for x in run) for run in samples]
    cpu = [statistics.median(x[1] for x in run) for run in samples]
    result = {"label": label, "pinned": have_taskset(), "runs": runs, "n": n,
              "load": os.getloadavg()[0], "wall_s": statistics.median(wall), "cpu_s":
              statistics.median(cpu), "run_wall_s": wall, "run_cpu_s": cpu}
    log(f"Argon2id ceiling {label}: {result['wall_s'] * 1000:.2f} ms wall, "
        f"{result['cpu_s'] * 1000:.2f} ms CPU per verify (run medians "
        f"{', '.join(f'{w * 1000:.1f}' for w in wall)} ms; load {result['load']:.2f})")
    return result


def ceilings(settings: dict[str, Any]) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )
    from joserfc import jwt
    from joserfc.jwk import ECKey, RSAKey

    argon = argon2_verify_seconds(settings, label="at the start")
    if have_taskset():
        os.sched_setaffinity(0, {int(SERVER_CPU)})
    payload = {"iss": "http://127.0.0.1", "sub": "x" * 43, "aud": "c" * 32, "exp": 2000000000,
               "iat": 1700000000, "nonce": "n", "at_hash": "h" * 22, "acr": "low",
               "amr": ["pwd"], "sid": "s" * 22, "email": "erika@example.org",
               "given_name": "Erika", "family_name": "Mustermann"}

    def pem(key: Any) -> bytes:
        return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())

    rsa_key = RSAKey.import_key(pem(rsa.generate_private_key(65537, settings["rsa_key_bits"])))
    ec_key = ECKey.import_key(pem(ec.generate_private_key(ec.SECP256R1())))
    rs = timed(lambda: jwt.encode({"alg": "RS256"}, payload, rsa_key, algorithms=["RS256"]), 200)
    es = timed(lambda: jwt.encode({"alg": "ES256"}, payload, ec_key, algorithms=["ES256"]), 500)
    if have_taskset():
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return {"argon2_verify_s": argon["wall_s"], "argon2_verify_cpu_s": argon["cpu_s"],
            "argon2": argon, "rs256_sign_s": rs, "es256_sign_s": es}


# -- one database -------------------------------------------------------------------------------

ONLY: set[str] = set()
EXTRA: dict[str, str] = {}
#: The suite's server settings (beyond the defaults); each variant changes one of them.
SUITE_SETTINGS: dict[str, Any] = {"audit_seal_interval_ms": 200, "database_pool_pre_ping": False}
GRANIAN_SUBSET = ("discovery", "userinfo", "introspection", "client_credentials", "refresh",
                  "flow_es256")
VARIANTS = [("userinfo_seal_each_commit", {"audit_seal_interval_ms": 0}),
            ("userinfo_pre_ping", {"database_pool_pre_ping": True})]


def run_database(kind: str, duration: int, quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": kind, "scenarios": {}}
    with database(kind) as url:
        port = free_port()
        extra = {**SUITE_SETTINGS, **EXTRA}
        env = settings_for(url, port, extra)
        log(f"{kind}: seeding {url.split('@')[-1]}")
        seeded = seed(env)
        settings = seeded["settings"]
        out["argon2"] = {k: settings[k] for k in
                         ("argon2_time_cost", "argon2_memory_kib", "argon2_parallelism")}
        out["server_settings"] = {k: settings.get(k) for k in (
            "audit_seal_after_commit", "audit_seal_interval_ms", "audit_seal_batch_size",
            "client_cache_seconds", "database_pool_size", "database_pool_pre_ping",
            "rsa_key_bits")}
        server = Server(env, port)
        out["server_command"] = server.command
        try:
            out["scenarios"] = scenarios(server, seeded, duration, quick)
        finally:
            server.stop()
        # Variants on one hot path: what audit sealing per commit and connection pings cost.
        for name, change in VARIANTS:
            if ONLY and name not in ONLY:
                continue
            server = Server(settings_for(url, port, {**extra, **change}), port)
            try:
                token = mint_tokens(server.base, browser_login(server.base, [seeded["ES256"]]),
                                    seeded["ES256"], 1)[0]
                log(f"{kind}: {name}")
                out["scenarios"][name] = wrk(
                    server.base, "simple.lua", duration,
                    {"BENCH_PATH": "/userinfo", "BENCH_AUTH": f"Bearer {token['access_token']}"},
                    server=server)
            finally:
                server.stop()
        out["audit"] = audit_state(url)
    return out


def audit_state(url: str) -> dict[str, Any]:
    from sqlalchemy import create_engine

    from servicekonto.audit.service import seal, verify

    engine = create_engine(url)
    try:
        t0 = time.perf_counter()
        sealed = seal(engine)
        seal_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = verify(engine)
        verify_s = time.perf_counter() - t0
        return {"sealed_at_end": sealed, "seal_s": seal_s, "verified": result.sealed,
                "ok": result.ok, "reason": result.reason, "verify_s": verify_s}
    finally:
        engine.dispose()


def scenarios(server: Server, seeded: dict[str, Any], duration: int,
              quick: bool) -> dict[str, Any]:
    base = server.base
    results: dict[str, Any] = {}
    es, rs, service = seeded["ES256"], seeded["RS256"], seeded["service"]
    browser = browser_login(base, [es, rs])
    cookie = "; ".join(f"{c.name}={c.value}" for c in browser.http.cookies)
    log("minting tokens (real code flows over HTTP)")
    minted = mint_tokens(base, browser, es, 2 * WRK_CONNECTIONS)
    access = minted[0]["access_token"]
    refresh_file = TMP / "refresh_tokens.txt"
    refresh_file.write_text("\n".join(t["refresh_token"] for t in minted[1:]) + "\n")
    login_file = TMP / "login_pages.txt"

    def run(name: str, script: str, env: dict[str, str], connections: int = WRK_CONNECTIONS,
            seconds: int = duration) -> None:
        if ONLY and name not in ONLY:
            return
        log(f"{name} ({seconds}s, {connections} connections)")
        results[name] = wrk(base, script, seconds, env, connections, server)
        r = results[name]
        log(f"  {r['rps']:.0f} req/s, flows/s {r['flows_per_s']:.1f}, "
            f"p50 {r['p50_us']/1000:.1f} ms, errors {r['errors']}")

    run("discovery", "simple.lua", {"BENCH_PATH": "/.well-known/openid-configuration"})
    run("jwks", "simple.lua", {"BENCH_PATH": "/jwks.json"})
    run("userinfo", "simple.lua", {"BENCH_PATH": "/userinfo",
                                   "BENCH_AUTH": f"Bearer {access}"})
    run("introspection", "simple.lua", {
        "BENCH_METHOD": "POST", "BENCH_PATH": "/oauth/introspect", "BENCH_AUTH": basic(es),
        "BENCH_BODY": f"token={access}"})
    run("client_credentials", "simple.lua", {
        "BENCH_METHOD": "POST", "BENCH_PATH": "/token", "BENCH_AUTH": basic(service),
        "BENCH_BODY": "grant_type=client_credentials&scope=bench.read"})
    run("refresh", "refresh.lua", {"BENCH_DATA": str(refresh_file), "BENCH_AUTH": basic(es)})
    for name, portal in (("flow_es256", es), ("flow_rs256", rs)):
        verifier, challenge = pkce()
        path = "/authorize?" + urlencode({
            "client_id": portal["client_id"], "response_type": "code",
            "scope": "openid profile email offline_access",
            "redirect_uri": portal["redirect_uri"], "state": "bench", "nonce": "bench",
            "code_challenge": challenge, "code_challenge_method": "S256"})
        run(name, "flow.lua", {"BENCH_AUTHZ_PATH": path, "BENCH_COOKIE": cookie,
                               "BENCH_AUTH": basic(portal),
                               "BENCH_REDIRECT_URI": quote(portal["redirect_uri"], safe=""),
                               "BENCH_VERIFIER": verifier})
    # Logins: Argon2id bound (tens per second); every POST needs its own fresh login page.
    login_seconds = max(5, duration // 2) if quick else duration
    if ONLY and "login" not in ONLY:
        return results
    login_file.write_text("\n".join(login_pages(base, 60 * login_seconds)) + "\n")
    # The Argon2id ceiling right before and right after, on the server's core with the server
    # idle (a second's pause lets the batched audit sealer finish): the same conditions as the
    # hashes inside the scenario, as close in time as possible (the machine is shared).
    time.sleep(1)
    before = argon2_verify_seconds(seeded["settings"], label="before the login scenario")
    in_server = hash_totals(base)
    run("login", "login.lua", {"BENCH_DATA": str(login_file)}, connections=LOGIN_CONNECTIONS,
        seconds=login_seconds)
    in_server_after = hash_totals(base)
    results["login"]["hash_route"] = hash_route(seeded["settings"], login_seconds)
    time.sleep(1)
    after = argon2_verify_seconds(seeded["settings"], label="after the login scenario")
    results["login"]["argon2_before"] = before
    results["login"]["argon2_after"] = after
    if in_server and in_server_after:
        verifies = in_server_after["verifies"] - in_server["verifies"]
        results["login"]["hash_in_server"] = {
            "verifies": verifies,
            "cpu_s": (in_server_after["cpu_s"] - in_server["cpu_s"]) / max(1, verifies)}
        log(f"  Argon2id inside the server: {verifies} verifies, "
            f"{results['login']['hash_in_server']['cpu_s'] * 1000:.2f} ms CPU each")
    # The target is judged against the faster of the two (the higher ceiling): never easier.
    results["login"]["argon2_verify_s_now"] = min(before["wall_s"], after["wall_s"])
    return results


def hash_totals(base: str) -> dict[str, float] | None:
    """The timed-hash app's totals (``--time-hash``), else None."""
    if APP["module"] == "wsgi:app":
        return None
    import requests

    return requests.get(base + "/_bench/argon2", timeout=10).json()


def side_app(app: str, env: dict[str, str], label: str, duration: int,
             wrk_env: dict[str, str], connections: int = WRK_CONNECTIONS) -> dict[str, Any]:
    """A small ceiling app (``app``) under the same server set-up and core, loaded by wrk with
    ``simple.lua`` for ``duration`` seconds, then stopped."""
    server = Server(env, free_port(), app=app)
    try:
        log(label)
        return wrk(server.base, "simple.lua", duration, wrk_env, connections=connections,
                   server=server)
    finally:
        server.stop()


def hash_route(settings: dict[str, Any], duration: int) -> dict[str, Any]:
    """The Argon2id verify behind a bare route (bench/hash_app.py) under the same server, core
    and connections as the login scenario: the login's rate if it did nothing but hash."""
    argon2 = {key: settings[key] for key in
              ("argon2_time_cost", "argon2_memory_kib", "argon2_parallelism")}
    return side_app("bench.hash_app:app",
                    {"BENCH_ARGON2": json.dumps(argon2), "BENCH_PASSWORD": PASSWORD},
                    "Argon2id behind a bare route", duration,
                    {"BENCH_METHOD": "POST", "BENCH_PATH": "/hash", "BENCH_EXPECT": "302",
                     "BENCH_BODY": "password=" + quote(PASSWORD, safe="")},
                    connections=LOGIN_CONNECTIONS)


def bare(duration: int) -> dict[str, Any]:
    return side_app("bench.bare_app:app", {}, "bare Flask route", duration,
                    {"BENCH_PATH": "/bare"})


# -- report -------------------------------------------------------------------------------------

def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                          check=False).stdout.strip()


def markdown(runs: list[dict[str, Any]], ceil: dict[str, float], bare_result: dict[str, Any],
             duration: int, load_before: str, load_after: str) -> str:
    argon_rate = 1 / ceil["argon2_verify_s"]
    commit = git("rev-parse", "--short", "HEAD")
    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--", "oidc",
                                                  "servicekonto", "bench",
                                                  ":!bench/results") else ""
    lines = [
        f"# Benchmark {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, commit {commit}{dirty}",
        "",
        f"- Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        f"- Load average before / after: {load_before} / {load_after} "
        "(the machine is shared: other processes add noise)",
        f"- CPU split: server `taskset -c {SERVER_CPU}`, wrk `taskset -c {LOAD_CPU}` "
        f"({'applied' if have_taskset() else 'NOT applied: taskset or 2nd CPU missing'}); "
        f"{DATABASE_PINNING['note']}",
        f"- Server: {SERVER_KIND}{' ' + GUNICORN_CLASS if SERVER_KIND == 'gunicorn' else ' wsgi'}, "
        f"{WORKERS} workers x {THREADS} threads; wrk "
        f"{WRK_THREADS} thread, {WRK_CONNECTIONS} connections (login: 4), {duration} s per "
        "scenario, after a warm-up (seeding, login, token minting through HTTP)",
        "",
        "## Ceilings (same machine, one core)",
        "",
        "| what | time per op | ops/s on one core |",
        "|---|---|---|",
        f"| Argon2id verify ({runs[0]['argon2']}), pinned subprocess, median of "
        f"{ceil['argon2']['runs']} x {ceil['argon2']['n']} | {ceil['argon2_verify_s']*1000:.2f} ms "
        f"wall, {ceil['argon2_verify_cpu_s']*1000:.2f} ms CPU | {argon_rate:.1f} |",
        f"| RS256 sign, RSA-{runs[0]['server_settings']['rsa_key_bits']} (joserfc) | "
        f"{ceil['rs256_sign_s']*1000:.2f} ms | {1/ceil['rs256_sign_s']:.0f} |",
        f"| ES256 sign, P-256 (joserfc) | {ceil['es256_sign_s']*1000:.3f} ms | "
        f"{1/ceil['es256_sign_s']:.0f} |",
        f"| bare Flask route, same {SERVER_KIND} set-up | server CPU "
        f"{bare_result['server_cpu_ms_per_request']:.3f} ms/req (p50 "
        f"{bare_result['p50_us']/1000:.2f} ms) | {bare_result['rps']:.0f} req/s measured, "
        f"{1000 / max(bare_result['server_cpu_ms_per_request'], 1e-6):.0f} by CPU |",
        "",
    ]
    for run in runs:
        lines += [f"## {run['kind']}", "",
                  f"Server command: `{run['server_command']}`  ",
                  *([f"Bare Flask route under this server: server CPU "
                     f"{run['bare']['server_cpu_ms_per_request']:.3f} ms/req, "
                     f"{run['bare']['rps']:.0f} req/s measured  "] if "bare" in run else []),
                  f"Settings: `{json.dumps(run['server_settings'])}`", "",
                  "| scenario | req/s | flows/s | p50 ms | p95 ms | p99 ms | errors | server CPU "
                  "ms/req | one-core capacity req/s | target | met |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in run["scenarios"].items():
            target, met = "", ""
            if name in TARGETS:
                value, unit = TARGETS[name]
                if name == "login":
                    rate = 1 / r.get("argon2_verify_s_now", ceil["argon2_verify_s"])
                    goal = value * rate
                    target = (f">= {goal:.1f}/s (80 % of {rate:.1f}, the Argon2id ceiling "
                              "on the server's core, faster of before / after)")
                    met = "yes" if r["flows_per_s"] >= goal else "NO"
                elif unit == "flows/s":
                    target = f">= {value} flows/s"
                    met = "yes" if r["flows_per_s"] >= value else "NO"
                else:
                    target = f">= {value} req/s"
                    met = "yes" if r["ok_rps"] >= value else "NO"
            flows = f"{r['flows_per_s']:.1f}" if r["flows"] else ""
            cpu = r.get("server_cpu_ms_per_request") or 0.0
            capacity = f"{1000 / cpu:.0f}" if cpu else ""
            lines.append(
                f"| {name} | {r['rps']:.0f} | {flows} | {r['p50_us']/1000:.2f} | "
                f"{r['p95_us']/1000:.2f} | {r['p99_us']/1000:.2f} | {r['errors']} | {cpu:.2f} "
                f"| {capacity} | {target} | {met} |")
        login = run["scenarios"].get("login")
        if login and "argon2_before" in login:
            def fmt(m: dict[str, Any]) -> str:
                return (f"{m['wall_s']*1000:.2f} ms wall / {m['cpu_s']*1000:.2f} ms CPU "
                        f"({1 / m['wall_s']:.1f}/s; run medians "
                        f"{', '.join(f'{w*1000:.1f}' for w in m['run_wall_s'])} ms; load "
                        f"{m['load']:.2f})")
            hash_cpu = min(login["argon2_before"]["cpu_s"], login["argon2_after"]["cpu_s"])
            lines += ["", "Argon2id ceiling for the login scenario (pinned subprocess on the "
                      "server's core, server idle, median of "
                      f"{login['argon2_before']['runs']} x {login['argon2_before']['n']}): "
                      f"before {fmt(login['argon2_before'])}; after "
                      f"{fmt(login['argon2_after'])}. The target uses the faster of the two. "
                      f"Server CPU per login beside one hash: "
                      f"{login['server_cpu_ms_per_request'] - hash_cpu * 1000:.2f} ms."]
            route = login.get("hash_route")
            if route and route["requests"]:
                ceiling = 1 / login["argon2_verify_s_now"]
                lines += ["", "Argon2id behind a bare route under the same server (POST, one "
                          "verify, 302; same core and connections, right after the login "
                          f"scenario): {route['ok_rps']:.1f}/s = "
                          f"{100 * route['ok_rps'] / ceiling:.0f} % of the ceiling above, "
                          f"server CPU {route['server_cpu_ms_per_request']:.2f} ms per request, "
                          f"{route['errors']} errors. The login reached "
                          f"{100 * login['flows_per_s'] / max(route['ok_rps'], 1e-9):.0f} % "
                          "of this rate."]
            inside = login.get("hash_in_server")
            if inside and login["requests"]:
                per_login = inside["cpu_s"] * inside["verifies"] / login["requests"]
                lines += ["", f"Argon2id timed inside the server during the scenario "
                          f"(`--time-hash`): {inside['verifies']} verifies, "
                          f"{inside['cpu_s'] * 1000:.2f} ms CPU each; server CPU per login "
                          f"beside its own hash: "
                          f"{login['server_cpu_ms_per_request'] - per_login * 1000:.2f} ms."]
        a = run["audit"]
        lines += ["", f"Audit chain after the run: {a['verified']} entries verified "
                  f"({'ok' if a['ok'] else 'BROKEN: ' + str(a['reason'])}) in "
                  f"{a['verify_s']:.2f} s; {a['sealed_at_end']} were still unsealed at the end "
                  f"(sealed in {a['seal_s']:.2f} s).", ""]
    lines += ["Scenario notes: `flow_*` counts complete flows (authorize -> code -> token); "
              "its req/s is both requests together, latencies are per request. `login` counts "
              "successful form posts (302). `userinfo_seal_each_commit` is userinfo with the "
              "audit chain sealed after every commit instead of in batches "
              "(`audit_seal_interval_ms = 0`); `userinfo_pre_ping` is userinfo with "
              "`database_pool_pre_ping = true` (the default). Errors are unexpected statuses "
              "plus socket errors and timeouts. Server CPU ms/req: user+system CPU of the gunicorn "
              "processes during the scenario divided by the requests (for flows: per request, "
              "two requests per flow); one-core capacity = 1000 / that, the rate the server "
              "could sustain on one otherwise idle core with the database elsewhere: the "
              "load-independent figure on a shared machine.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="shorter login scenario")
    parser.add_argument("--out", default="", help="results file (default bench/results/...)")
    parser.add_argument("--no-granian", action="store_true",
                        help="skip the granian comparison at the end")
    parser.add_argument("--only", default="", help="comma-separated scenarios (exploration)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra server setting, e.g. database_pool_pre_ping=false")
    parser.add_argument("--database-cpu", default=os.environ.get("BENCH_DATABASE_CPU", LOAD_CPU),
                        help="pin the local PostgreSQL server to this core during the suite "
                             "(default: wrk's core; 'none': leave it unpinned)")
    parser.add_argument("--granian-all", action="store_true",
                        help="run every scenario under granian too, not only the subset")
    parser.add_argument("--time-hash", action="store_true",
                        help="time the Argon2id verifies inside the server "
                             "(bench/timed_hash_app.py)")
    args = parser.parse_args()
    if args.time_hash:
        APP["module"] = "bench.timed_hash_app:app"
    ONLY.update(x for x in args.only.split(",") if x)
    EXTRA.update(item.split("=", 1) for item in args.set)
    if shutil.which("wrk") is None:
        print("wrk is missing: run bench/setup.sh (apt-get install -y wrk)", file=sys.stderr)
        return 2
    TMP.mkdir(parents=True, exist_ok=True)
    load_before = " ".join(os.getloadavg().__repr__().strip("()").split(", ")[:1])
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    if "postgres" in kinds and not pg_reachable():
        log(f"PostgreSQL not reachable at {PG_SERVER}: skipped")
        kinds.remove("postgres")
    from servicekonto.settings import load_settings

    ceil = ceilings(load_settings({"env": "development", "secret_key": "x" * 40}))
    log(f"ceilings: {ceil}")
    bare_result = bare(args.duration)
    with database_on_cpu(args.database_cpu if "postgres" in kinds else "none"):
        runs = [run_database(kind, args.duration, args.quick) for kind in kinds]
        global SERVER_KIND
        if (shutil.which(str(VENV_BIN / "granian")) and SERVER_KIND == "gunicorn" and not ONLY
                and not args.no_granian):
            # The same app under granian (Rust HTTP server): the server's own share.
            SERVER_KIND = "granian"
            if not args.granian_all:
                ONLY.update(GRANIAN_SUBSET)
            try:
                run = run_database(kinds[-1], args.duration, args.quick)
                run["kind"] = f"{kinds[-1]}, granian ({'all' if args.granian_all else 'subset'})"
                run["bare"] = bare(args.duration)
                runs.append(run)
            finally:
                SERVER_KIND = "gunicorn"
                ONLY.clear()
    load_after = f"{os.getloadavg()[0]:.2f}"
    text = markdown(runs, ceil, bare_result, args.duration, load_before, load_after)
    commit = git("rev-parse", "--short", "HEAD")
    out = Path(args.out) if args.out else RESULTS / f"{dt.date.today():%Y-%m-%d}-{commit}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    (TMP / "last.json").write_text(json.dumps({"runs": runs, "ceilings": ceil,
                                               "bare": bare_result}, indent=1, default=str))
    print(text)
    log(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
