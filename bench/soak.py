"""Bounded soak: N minutes of mixed traffic at a fixed rate against two instances on PostgreSQL.

Not part of CI. Starts everything it needs and stops it afterwards: a fresh database on the
PostgreSQL server of ``--postgres`` (created and dropped), its own ``redis-server``, two
gunicorn instances (``config/gunicorn.conf.py``) and nginx in front (the harness of
``tests/scaleout``). Traffic is open-loop (requests start on schedule, whether or not earlier
ones finished), mixed like a portal landscape:

    10 %  full login: authorization code flow with PKCE, login form, token (new browser)
    35 %  client_credentials token
    20 %  userinfo with a recent access token
    15 %  /jwks.json
    10 %  discovery document
    10 %  token introspection

Reported: errors (must be zero), latency percentiles per kind, and the resident memory of each
instance (master + workers) after warm-up and at the end.

    .venv/bin/python -m bench.soak --minutes 3 --rate 20 \
        --out bench/results/soak-$(date -u +%F).md
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MIX = [("login", 10), ("client_credentials", 35), ("userinfo", 20), ("jwks", 15),
       ("discovery", 10), ("introspect", 10)]


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its children (gunicorn master + workers), KiB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class Soak:
    def __init__(self, cluster: Any, seed: int = 7) -> None:
        from tests.oidc.conftest import http_get, http_post

        self.cluster = cluster
        self.get, self.post = http_get, http_post
        self.via = cluster.provider("nginx")
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[tuple[str, str]] = []
        self.access_tokens: list[str] = []
        self.cc_tokens: list[str] = []
        self.citizens = [self.via.citizen() for _ in range(20)]
        self.portal = self.via.portal("Soak-Portal")
        self.service = self.via.portal("Soak-Fachverfahren", scope="openid", redirect_uri=None,
                                       grant_types=["client_credentials"])

    def _record(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.latency[kind].append(seconds)
            if error:
                self.errors.append((kind, error))

    def one(self, kind: str) -> None:
        started = time.perf_counter()
        error = None
        try:
            error = getattr(self, f"do_{kind}")()
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        self._record(kind, time.perf_counter() - started, error)

    def do_login(self) -> str | None:
        email = self.random.choice(self.citizens)
        token, _rp, _landing = self.via.login_flow(self.portal, self.via.browser(), email)
        with self.lock:
            self.access_tokens.append(token["access_token"])
            del self.access_tokens[:-200]
        return None

    def do_client_credentials(self) -> str | None:
        response = self.post(self.via.base + "/token",
                             data={"grant_type": "client_credentials"},
                             auth=(self.service.client_id, self.service.secret))
        if response.status_code != 200:
            return f"HTTP {response.status_code}"
        with self.lock:
            self.cc_tokens.append(response.json()["access_token"])
            del self.cc_tokens[:-200]
        return None

    def do_userinfo(self) -> str | None:
        with self.lock:
            token = self.random.choice(self.access_tokens) if self.access_tokens else None
        if token is None:
            return self.do_jwks()
        response = self.get(self.via.base + "/userinfo",
                            headers={"Authorization": f"Bearer {token}"})
        return None if response.status_code == 200 else f"HTTP {response.status_code}"

    def do_jwks(self) -> str | None:
        response = self.get(self.via.base + "/jwks.json")
        return None if response.status_code == 200 else f"HTTP {response.status_code}"

    def do_discovery(self) -> str | None:
        response = self.get(self.via.base + "/.well-known/openid-configuration")
        return None if response.status_code == 200 else f"HTTP {response.status_code}"

    def do_introspect(self) -> str | None:
        with self.lock:
            token = self.random.choice(self.cc_tokens) if self.cc_tokens else None
        if token is None:
            return self.do_client_credentials()
        response = self.post(self.via.base + "/oauth/introspect", data={"token": token},
                             auth=(self.service.client_id, self.service.secret))
        if response.status_code != 200 or response.json().get("active") is not True:
            return f"HTTP {response.status_code} {response.text[:80]}"
        return None

    def kinds(self) -> list[str]:
        return [kind for kind, weight in MIX for _ in range(weight)]


def run(minutes: float, rate: float, postgres: str, out: Path | None,
        warmup_seconds: float = 20.0) -> int:
    from sqlalchemy import create_engine

    from servicekonto.migrate import upgrade
    from tests.scaleout.conftest import RedisServer, make_cluster
    from tests.support.databases import temporary_postgres_database
    from tests.support.mailbox import Mailbox

    tmp = Path(tempfile.mkdtemp(prefix="sk_soak_"))
    mailbox = Mailbox()
    mailbox.start()
    redis_server = RedisServer(tmp / "redis").start()
    with temporary_postgres_database(postgres) as url:
        engine = create_engine(url)
        upgrade(engine)
        engine.dispose()
        cluster = make_cluster(tmp, url, redis_server.url, mailbox.port)
        try:
            for instance in cluster.instances.values():
                instance.start(workers=2, threads=4)
            cluster.nginx.start()
            soak = Soak(cluster)
            kinds = soak.kinds()
            pool = concurrent.futures.ThreadPoolExecutor(max_workers=32)
            memory: dict[str, list[tuple[float, int]]] = defaultdict(list)
            started = time.monotonic()
            total = int(minutes * 60 * rate)
            futures = []
            next_sample = started
            for n in range(total):
                due = started + n / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(soak.one, soak.random.choice(kinds)))
                if time.monotonic() >= next_sample:
                    for name, inst in cluster.instances.items():
                        memory[name].append((time.monotonic() - started, rss_kib(inst.proc.pid)))
                    next_sample += 10
            concurrent.futures.wait(futures, timeout=120)
            elapsed = time.monotonic() - started
            for name, inst in cluster.instances.items():
                memory[name].append((elapsed, rss_kib(inst.proc.pid)))
            pool.shutdown(wait=True)
            seal = cluster.instances["b"].cli("audit", "seal", check=False)
            verify = cluster.instances["b"].cli("audit", "verify", check=False)
            report = render(soak, memory, minutes, rate, elapsed, total, warmup_seconds,
                            verify.returncode == 0 and seal.returncode == 0, verify.stdout)
        finally:
            cluster.nginx.stop()
            for instance in cluster.instances.values():
                instance.stop()
            cluster.app.extensions["servicekonto.db"].engine.dispose()
    redis_server.stop()
    mailbox.stop()
    print(report)
    if out:
        out.write_text(report)
    return 0 if not soak.errors else 1


def render(soak: Soak, memory: dict[str, list[tuple[float, int]]], minutes: float, rate: float,
           elapsed: float, total: int, warmup: float, audit_ok: bool, audit_text: str) -> str:
    lines = [
        f"# Soak {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`python -m bench.soak --minutes {minutes:g} --rate {rate:g}`: two gunicorn instances "
        "(2 workers x 4 threads each, `config/gunicorn.conf.py`) behind nginx, one PostgreSQL "
        "database, one Redis; open-loop mixed traffic (see bench/soak.py). Machine: "
        f"{os.cpu_count()} cores shared with other work.",
        "",
        f"- scheduled requests: {total} in {elapsed:.0f} s ({total / elapsed:.1f}/s achieved)",
        f"- **errors: {len(soak.errors)}**",
        f"- audit chain after the run (seal + verify): {'OK' if audit_ok else 'FAILED'} "
        f"({audit_text.strip()[:120]})",
        "",
        "| kind | count | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    everything: list[float] = []
    for kind, _weight in MIX:
        values = soak.latency.get(kind, [])
        everything += values
        if values:
            lines.append(f"| {kind} | {len(values)} | {percentile(values, 50) * 1000:.0f} | "
                         f"{percentile(values, 95) * 1000:.0f} | "
                         f"{percentile(values, 99) * 1000:.0f} | {max(values) * 1000:.0f} |")
    lines.append(f"| all | {len(everything)} | {percentile(everything, 50) * 1000:.0f} | "
                 f"{percentile(everything, 95) * 1000:.0f} | "
                 f"{percentile(everything, 99) * 1000:.0f} | "
                 f"{max(everything) * 1000 if everything else 0:.0f} |")
    lines += ["", "Memory (RSS of master + workers per instance; growth after a "
              f"{warmup:.0f} s warm-up):", "",
              "| instance | after warm-up MiB | end MiB | growth MiB | samples |",
              "|---|---:|---:|---:|---:|"]
    for name, samples in sorted(memory.items()):
        warm = next((kib for t, kib in samples if t >= warmup), samples[0][1])
        end = samples[-1][1]
        lines.append(f"| {name} | {warm / 1024:.1f} | {end / 1024:.1f} | "
                     f"{(end - warm) / 1024:+.1f} | {len(samples)} |")
    if soak.errors:
        lines += ["", "Errors (first 20):", ""]
        lines += [f"- {kind}: {error}" for kind, error in soak.errors[:20]]
    lines.append("")
    per_kind = {k: statistics.mean(v) * 1000 for k, v in soak.latency.items() if v}
    lines.append("Mean latency per kind (ms): " + ", ".join(
        f"{k} {v:.0f}" for k, v in sorted(per_kind.items())))
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--postgres", default=os.environ.get(
        "SOAK_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL server URL; a temporary database is created on it and dropped")
    parser.add_argument("--out", type=Path, default=None, help="write the report here too")
    args = parser.parse_args()
    return run(args.minutes, args.rate, args.postgres, args.out)


if __name__ == "__main__":
    sys.exit(main())
