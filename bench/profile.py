"""Profile one hot path in-process (Flask test client, pyinstrument) on a fresh SQLite (or
--pg) database: ``python bench/profile.py userinfo -n 500``. Prints the call tree."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import basic, database, environment, free_port, seed, settings_for  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["userinfo", "introspection", "client_credentials",
                                             "refresh", "discovery"])
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--pg", action="store_true")
    parser.add_argument("--interval-ms", type=int, default=200)
    parser.add_argument("--all", action="store_true")
    args = parser.parse_args()
    from pyinstrument import Profiler

    with database("postgres" if args.pg else "sqlite") as url:
        env = settings_for(url, free_port(), {"audit_seal_interval_ms": args.interval_ms})
        seeded = seed(env)
        with environment(env):
            from oidc import tokens
            from oidc.models import Client
            from servicekonto import create_app
            from servicekonto.accounts.models import User
            from servicekonto.db import db

            app = create_app()
            with app.app_context():
                client = db.session.query(Client).filter_by(
                    client_id=seeded["ES256"]["client_id"]).one()
                user = db.session.query(User).one()
                _row, access, refresh = tokens.issue(
                    db.session, client=client, user_id=user.id,
                    scope="openid profile email offline_access", grant_type="authorization_code",
                    with_refresh=True, settings=app.config["SERVICEKONTO"])
                db.session.commit()
            http = app.test_client()
            es, service = seeded["ES256"], seeded["service"]
            state = {"refresh": refresh}

            def call() -> None:
                if args.scenario == "userinfo":
                    r = http.get("/userinfo", headers={"Authorization": f"Bearer {access}"})
                elif args.scenario == "introspection":
                    r = http.post("/oauth/introspect", headers={"Authorization": basic(es)},
                                  data={"token": access})
                elif args.scenario == "client_credentials":
                    r = http.post("/token", headers={"Authorization": basic(service)},
                                  data={"grant_type": "client_credentials",
                                        "scope": "bench.read"})
                elif args.scenario == "refresh":
                    r = http.post("/token", headers={"Authorization": basic(es)},
                                  data={"grant_type": "refresh_token",
                                        "refresh_token": state["refresh"]})
                    state["refresh"] = r.get_json()["refresh_token"]
                else:
                    r = http.get("/.well-known/openid-configuration")
                assert r.status_code == 200, r.get_data(as_text=True)

            for _ in range(20):
                call()
            profiler = Profiler(interval=0.0005)
            t0 = time.perf_counter()
            profiler.start()
            for _ in range(args.n):
                call()
            profiler.stop()
            elapsed = time.perf_counter() - t0
            print(f"{args.scenario}: {args.n / elapsed:.0f} req/s in-process (profiled)")
            print(profiler.output_text(unicode=False, color=False, show_all="--all" in sys.argv))
            app.extensions["servicekonto.db"].engine.dispose()


if __name__ == "__main__":
    main()
