"""Scale-out harness: real gunicorn instances, a private Redis, nginx, a private PostgreSQL.

Everything here is started by the test and torn down by it; the shared PostgreSQL and Redis of
the other test runs are never restarted or reconfigured (the fault tests use their own
``redis-server`` and their own PostgreSQL cluster). Instances run ``gunicorn -c
config/gunicorn.conf.py wsgi:app`` with the settings in the environment, exactly as in
production (docs/operations.md), with ``env = testing`` for http on loopback.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from tests.conftest import IN_CI, TEST_SECRET
from tests.oidc.conftest import Provider

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate: Any, timeout: float, interval: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
            if result:
                return result
        except Exception:  # noqa: BLE001, S110 - polling a server that is still starting
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def need_binary(name: str, candidates: tuple[str, ...] = ()) -> str:
    found = shutil.which(name) or next((c for c in candidates if Path(c).exists()), None)
    if found:
        return found
    reason = (f"{name} is not installed (scripts/install-system-packages.sh installs it; "
              ".ci/run calls that script)")
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


# -- Redis ----------------------------------------------------------------------------------

class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.binary = need_binary("redis-server")
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        wait_until(lambda: redis.Redis(port=self.port, socket_timeout=1).ping(), 10,
                   what="redis-server")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


# -- a private PostgreSQL cluster (fault tests restart it) ----------------------------------

class PrivatePostgres:
    """initdb/pg_ctl as the ``postgres`` user in a temp dir, on a free port."""

    def __init__(self) -> None:
        if not PG_BIN:
            if IN_CI:
                pytest.fail("PostgreSQL server binaries not found under /usr/lib/postgresql")
            pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql")
        self.bin = PG_BIN[-1]
        # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
        self.dir = Path(tempfile.mkdtemp(prefix="sk_scaleout_pg_")) / "pgdata"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)

    def init(self) -> PrivatePostgres:
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        self.dir.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(self.dir.parent, "postgres")
            shutil.chown(self.dir, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.dir), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync")
        return self

    def pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir), "-o", options, "-l",
                  str(self.dir / "server.log"), "-w", "-t", "30", action, *extra)

    def start(self) -> None:
        self.pg_ctl("start")

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "fast")

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir.parent, ignore_errors=True)


# -- app instances --------------------------------------------------------------------------

def kek() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def cluster_settings(database_url: str, redis_url: str, issuer: str, mail_port: int,
                     secrets_: dict[str, str]) -> dict[str, Any]:
    """Settings every instance (and the test's own in-process app) shares."""
    return {
        "env": "testing",
        "database_url": database_url,
        "redis_url": redis_url,
        "secret_key": TEST_SECRET,
        "key_encryption_key": secrets_["kek"],
        "pairwise_salt": secrets_["salt"],
        "issuer": issuer,
        "session_cookie_secure": False,
        "mail_smtp_host": "127.0.0.1",
        "mail_smtp_port": mail_port,
        "log_level": "WARNING",
        "allow_loopback_http": True,
        "rsa_key_bits": 2048,
        "trusted_proxies": 1,
    }


def environment(settings: dict[str, Any], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SERVICEKONTO_") and k not in ("DATABASE_URL",)}
    for key, value in settings.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list):
            value = ",".join(value)
        env[f"SERVICEKONTO_{key.upper()}"] = str(value)
    env.update(extra)
    return env


@dataclass
class Instance:
    name: str
    settings: dict[str, Any]
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, workers: int = 1, threads: int = 4) -> Instance:
        self.workdir.mkdir(parents=True, exist_ok=True)
        metrics_dir = self.workdir / f"{self.name}-metrics"
        env = environment(
            {**self.settings, "instance_path": str(self.workdir / f"{self.name}-instance")},
            GUNICORN_BIND=f"127.0.0.1:{self.port}", GUNICORN_WORKERS=str(workers),
            GUNICORN_THREADS=str(threads), GUNICORN_ACCESSLOG="",
            GUNICORN_GRACEFUL_TIMEOUT="5", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "wsgi:app"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            wait_until(lambda: requests.get(self.url + "/healthz", timeout=2).ok, 60,
                       what=f"instance {self.name}")
        except AssertionError:
            self.stop()
            raise AssertionError(f"instance {self.name} did not start:\n"
                                 f"{self.log.read_text()[-3000:]}") from None
        return self

    def kill9(self) -> None:
        """SIGKILL the whole gunicorn (master and workers): a crashed machine."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``servicekonto ARGS`` with this instance's settings (an operator on its machine)."""
        env = environment({**self.settings,
                           "instance_path": str(self.workdir / f"{self.name}-instance")})
        command = str(Path(sys.executable).parent / "servicekonto")
        return subprocess.run([command, *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=120,
                              check=check)


# -- nginx ----------------------------------------------------------------------------------

class Nginx:
    """nginx with its own config on a loopback port in front of ``upstreams``."""

    def __init__(self, upstreams: list[str]) -> None:
        self.binary = need_binary("nginx", ("/usr/sbin/nginx",))
        # Its own folder outside pytest's root-only tmp_path (workers run as nobody).
        self.workdir = Path(tempfile.mkdtemp(prefix="sk_scaleout_nginx_"))
        self.port = free_port()
        self.upstreams = upstreams
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        servers = "\n".join(f"        server {u} max_fails=1 fail_timeout=5s;"
                            for u in self.upstreams)
        w = self.workdir
        user = "user nobody nogroup;" if os.geteuid() == 0 else ""
        return f"""
{user}
worker_processes 1;
daemon off;
pid {w}/nginx.pid;
error_log {w}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {w}/access.log;
    client_body_temp_path {w}/body; proxy_temp_path {w}/proxy;
    fastcgi_temp_path {w}/fastcgi; uwsgi_temp_path {w}/uwsgi; scgi_temp_path {w}/scgi;
    map $http_x_request_id $sk_rid {{ default $http_x_request_id; "" $request_id; }}
    upstream servicekonto {{
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $host;
        proxy_set_header X-Forwarded-Port $server_port;
        proxy_set_header X-Request-ID $sk_rid;
        proxy_connect_timeout 2s;
        proxy_read_timeout 35s;
        proxy_next_upstream error timeout http_502 http_503;
        proxy_next_upstream_tries 2;
        location / {{ proxy_pass http://servicekonto; }}
    }}
}}
"""

    def start(self) -> Nginx:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chmod(self.workdir, 0o755)  # noqa: S103 - nginx workers run as nobody
        conf = self.workdir / "nginx.conf"
        conf.write_text(self.config())
        self.proc = subprocess.Popen([self.binary, "-c", str(conf), "-p", str(self.workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(lambda: requests.get(self.url + "/healthz", timeout=2).ok, 20,
                   what="nginx")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)


# -- the cluster ----------------------------------------------------------------------------

@dataclass
class Cluster:
    settings: dict[str, Any]
    app: Any
    instances: dict[str, Instance]
    nginx: Nginx | None

    def provider(self, via: str) -> Provider:
        """The flow helpers (citizens, portals, Authlib client, browser) against one instance
        (``"a"``, ``"b"``) or ``"nginx"``; services run in the test's own app on the same
        database and Redis."""
        url = self.nginx.url if via == "nginx" else self.instances[via].url
        return Provider(self.app, SimpleNamespace(url=url))


def make_cluster(tmp: Path, database_url: str, redis_url: str, mail_port: int,
                 names: tuple[str, ...] = ("a", "b"), with_nginx: bool = True) -> Cluster:
    from servicekonto import create_app

    ports = {name: free_port() for name in names}
    nginx = Nginx([f"127.0.0.1:{p}" for p in ports.values()]) \
        if with_nginx else None
    issuer = nginx.url if nginx else f"http://127.0.0.1:{ports[names[0]]}"
    settings = cluster_settings(database_url, redis_url, issuer, mail_port,
                                {"kek": kek(), "salt": secrets.token_urlsafe(32)})
    app = create_app({**settings, "instance_path": str(tmp / "test-instance")})
    instances = {name: Instance(name, settings, tmp / "instances", port=ports[name])
                 for name in names}
    return Cluster(settings, app, instances, nginx)


@pytest.fixture
def scaleout_database(postgres_server_url: str) -> Iterator[str]:
    """A fresh, migrated database on the shared PostgreSQL server (dropped afterwards)."""
    from sqlalchemy import create_engine

    from servicekonto.migrate import upgrade
    from tests.support.databases import temporary_postgres_database

    with temporary_postgres_database(postgres_server_url) as url:
        engine = create_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture
def own_redis(tmp_path: Path, redis_url: str) -> Iterator[RedisServer]:
    """A private redis-server (``redis_url`` only proves Redis is part of this test pass)."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def cluster(tmp_path: Path, scaleout_database: str, own_redis: RedisServer,
            mailbox: Any) -> Iterator[Cluster]:
    """Two instances (A, B) on one database and one Redis, behind nginx."""
    built = make_cluster(tmp_path, scaleout_database, own_redis.url, mailbox.port)
    try:
        for instance in built.instances.values():
            instance.start()
        assert built.nginx is not None
        built.nginx.start()
        yield built
    finally:
        if built.nginx is not None:
            built.nginx.stop()
        for instance in built.instances.values():
            instance.stop()
        built.app.extensions["servicekonto.db"].dispose()
