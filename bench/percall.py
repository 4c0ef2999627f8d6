"""Server-side CPU per request of each hot path, in-process, without an HTTP server or the
test client: ``python bench/percall.py [--pg] [-n 2000] [--profile userinfo]``.

The WSGI environ of each request is built once and the app is called directly, so the figure is
the app's own cost (Flask, our middleware, the endpoint, SQLAlchemy, the driver): the number to
watch while optimising. The HTTP server adds its own share on top (bare route: bench/run.py).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path
from typing import Any

# bench/profile.py would shadow the standard library's profile module (cProfile needs it).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import basic, database, environment, free_port, seed, settings_for  # noqa: E402

SCENARIOS = ["discovery", "jwks", "userinfo", "introspection", "client_credentials", "refresh",
             "authorize", "code_token", "login"]
#: Logins cost tens of ms (Argon2id): at most this many are timed, whatever ``-n`` says.
LOGIN_MAX = 200


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--pg", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--profile", default="", help="cProfile (CPU time) of one scenario")
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--gc", default="", help="'freeze': gc.freeze() after start-up; "
                        "'off': no cyclic GC while measuring")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra server setting, e.g. audit_seal_after_commit=false")
    args = parser.parse_args()
    only = [s for s in args.only.split(",") if s] or SCENARIOS
    from urllib.parse import parse_qs, urlencode, urlsplit

    from werkzeug.test import EnvironBuilder

    with database("postgres" if args.pg else "sqlite") as url:
        env = settings_for(url, free_port(), {"audit_seal_interval_ms": 200,
                                              "database_pool_pre_ping": False,
                                              **dict(i.split("=", 1) for i in args.set)})
        seeded = seed(env)
        with environment(env):
            from bench.run import PASSWORD, pkce
            from servicekonto import create_app

            app = create_app()
            http = app.test_client()
            es, service = seeded["ES256"], seeded["service"]
            # A signed-in citizen with consent (the real forms), then one code flow's tokens.
            from tests.support.forms import parse_forms

            page = http.get("/login")
            form = parse_forms(page.get_data(as_text=True))[0]
            r = http.post("/login", data={**form["fields"], "email": "erika@example.org",
                                          "password": PASSWORD})
            assert r.status_code == 302, r.status_code
            verifier, challenge = pkce()
            query = urlencode({"client_id": es["client_id"], "response_type": "code",
                               "scope": "openid profile email offline_access",
                               "redirect_uri": es["redirect_uri"], "state": "s", "nonce": "n",
                               "code_challenge": challenge, "code_challenge_method": "S256"})
            r = http.get("/authorize?" + query)
            for _ in range(5):  # to the consent page and through it
                location = r.headers.get("Location", "")
                if r.status_code == 302 and location.startswith("/"):
                    r = http.get(location)
                elif r.status_code == 200:
                    form = parse_forms(r.get_data(as_text=True))[0]
                    r = http.post(form["action"], data={**form["fields"], "decision": "allow"})
                else:
                    break
            assert "code=" in r.headers.get("Location", ""), r.get_data(as_text=True)[:300]
            cookie = http.get_cookie(app.config["SESSION_COOKIE_NAME"]).value

            def code() -> str:
                r = http.get("/authorize?" + query)
                return parse_qs(urlsplit(r.headers["Location"]).query)["code"][0]

            r = http.post("/token", headers={"Authorization": basic(es)}, data={
                "grant_type": "authorization_code", "code": code(),
                "redirect_uri": es["redirect_uri"], "code_verifier": verifier})
            token = r.get_json()
            state = {"refresh": token["refresh_token"]}
            access = token["access_token"]

            def environ(method: str, path: str, headers: dict[str, str] | None = None,
                        data: str | None = None) -> dict[str, Any]:
                b = EnvironBuilder(path=path, method=method, headers=headers or {},
                                   data=data, content_type="application/x-www-form-urlencoded"
                                   if data else None,
                                   environ_base={"REMOTE_ADDR": "127.0.0.1"})
                e = b.get_environ()
                body = e["wsgi.input"].read()
                e["_body"] = body
                return e

            def call(e: dict[str, Any]) -> tuple[str, bytes]:
                e = dict(e)
                e["wsgi.input"] = io.BytesIO(e["_body"])
                status: list[str] = []
                out = b"".join(app.wsgi_app(e, lambda s, h, *a: status.append(s)))
                return status[0], out

            fixed = {
                "discovery": environ("GET", "/.well-known/openid-configuration"),
                "jwks": environ("GET", "/jwks.json"),
                "userinfo": environ("GET", "/userinfo",
                                    {"Authorization": f"Bearer {access}"}),
                "introspection": environ("POST", "/oauth/introspect",
                                         {"Authorization": basic(es)}, f"token={access}"),
                "client_credentials": environ(
                    "POST", "/token", {"Authorization": basic(service)},
                    "grant_type=client_credentials&scope=bench.read"),
                "authorize": environ("GET", "/authorize?" + query,
                                     {"Cookie": f"{app.config['SESSION_COOKIE_NAME']}={cookie}"}),
            }
            import json

            def one(name: str) -> None:
                if name in fixed:
                    status, out = call(fixed[name])
                    assert status[:3] in ("200", "302"), (name, status, out[:300])
                elif name == "refresh":
                    status, out = call(environ(
                        "POST", "/token", {"Authorization": basic(es)},
                        f"grant_type=refresh_token&refresh_token={state['refresh']}"))
                    assert status[:3] == "200", out
                    state["refresh"] = json.loads(out)["refresh_token"]
                elif name == "code_token":
                    status, out = call(environ(
                        "POST", "/token", {"Authorization": basic(es)},
                        urlencode({"grant_type": "authorization_code", "code": state["code"],
                                   "redirect_uri": es["redirect_uri"],
                                   "code_verifier": verifier})))
                    assert status[:3] == "200", out
                elif name == "login":
                    # A fresh login page (session cookie + CSRF token) per POST, fetched
                    # beforehand: only the form post is timed, as in bench/run.py.
                    status, out = call(state["logins"].pop())
                    assert status[:3] == "302", (status, out[:300])

            def login_posts(count: int) -> list[dict[str, Any]]:
                cookie_name = app.config["SESSION_COOKIE_NAME"]
                posts = []
                for _ in range(count):
                    browser = app.test_client()
                    page = browser.get("/login")
                    fields = parse_forms(page.get_data(as_text=True))[0]["fields"]
                    body = urlencode({**fields, "email": "erika@example.org",
                                      "password": PASSWORD})
                    posts.append(environ("POST", "/login", {
                        "Cookie": f"{cookie_name}={browser.get_cookie(cookie_name).value}"},
                        body))
                return posts

            import gc

            if args.gc == "freeze":
                gc.collect()
                gc.freeze()
            elif args.gc == "off":
                gc.disable()
            for name in only:
                n = args.n
                codes = []
                if name == "code_token":
                    codes = [code() for _ in range(n + 150)]
                if name == "login":
                    n = min(n, LOGIN_MAX)
                    state["logins"] = login_posts(n + 150)
                for _ in range(50):
                    if codes:
                        state["code"] = codes.pop()
                    one(name)
                profiler = None
                if args.profile == name:
                    # CPU time, not wall time: on a shared machine waits would dominate.
                    import cProfile

                    profiler = cProfile.Profile(time.process_time)
                    profiler.enable()
                t0 = os.times()
                c0, w0 = time.process_time(), time.perf_counter()
                for _ in range(n):
                    if codes:
                        state["code"] = codes.pop()
                    one(name)
                cpu, wall = time.process_time() - c0, time.perf_counter() - w0
                t1 = os.times()
                user, system = t1.user - t0.user, t1.system - t0.system
                if profiler:
                    profiler.disable()
                # Python function calls per request: a load-independent proxy of the CPU cost
                # (the machine is shared; CPU times inflate when it is busy).
                import cProfile
                import pstats

                counter = cProfile.Profile()
                counter.enable()
                for _ in range(100):
                    if codes:
                        state["code"] = codes.pop()
                    one(name)
                counter.disable()
                calls = pstats.Stats(counter).total_calls / 100  # type: ignore[attr-defined]
                print(f"{name:20s} cpu {1000 * cpu / n:6.3f} ms/req (user {1000 * user / n:.3f}, "
                      f"system {1000 * system / n:.3f})  wall {1000 * wall / n:6.3f} ms/req  "
                      f"{calls:7.0f} calls/req", flush=True)
                if name == "login":
                    # The hash alone, same process, right after: the rest is the overhead.
                    from servicekonto.accounts import passwords

                    with app.app_context():
                        stored = passwords.hasher().hash(PASSWORD)
                        c0 = time.process_time()
                        for _ in range(n):
                            passwords.hasher().verify(stored, PASSWORD)
                        verify = (time.process_time() - c0) / n
                    print(f"{'  argon2id verify':20s} cpu {1000 * verify:6.3f} ms/op; login "
                          f"beside the hash {1000 * (cpu / n - verify):6.3f} ms/req", flush=True)
                if profiler:
                    import pstats

                    stats = pstats.Stats(profiler)
                    stats.sort_stats("cumulative").print_stats(args.top)
                    stats.sort_stats("tottime").print_stats(25)
            app.extensions["servicekonto.db"].engine.dispose()


if __name__ == "__main__":
    main()
