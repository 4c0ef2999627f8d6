"""CPU cost of the userinfo lookup by layer (ORM entities, Core rows, raw psycopg), one
process, no HTTP: ``python bench/micro_orm.py`` (PostgreSQL at BENCH_PG_URL). Evidence for
docs/performance.md: how much of a hot request is the ORM and the driver."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import database, environment, free_port, seed, settings_for  # noqa: E402


def main() -> None:
    from sqlalchemy import and_, select
    from sqlalchemy.orm import Session

    with database("postgres") as url:
        env = settings_for(url, free_port(), {"database_pool_pre_ping": False})
        seeded = seed(env)
        with environment(env):
            from oidc import tokens
            from oidc.models import Client, Token
            from servicekonto import create_app
            from servicekonto.accounts.models import User
            from servicekonto.consent.models import Consent
            from servicekonto.db import db

            app = create_app()
            engine = app.extensions["servicekonto.db"].engine
            with app.app_context():
                client = db.session.query(Client).filter_by(
                    client_id=seeded["ES256"]["client_id"]).one()
                user = db.session.query(User).one()
                _row, access, _ = tokens.issue(
                    db.session, client=client, user_id=user.id, scope="openid profile email",
                    grant_type="authorization_code", with_refresh=False,
                    settings=app.config["SERVICEKONTO"])
                db.session.commit()
            digest = tokens.hash_token(access)
            orm = (select(Token, User, Consent.granted_claims)
                   .join(User, User.id == Token.user_id)
                   .outerjoin(Consent, and_(Consent.user_id == Token.user_id,
                                            Consent.client_pk == Token.client_pk))
                   .where(Token.access_token_hash == digest))
            core = (select(Token.__table__, User.__table__, Consent.granted_claims)
                    .join_from(Token.__table__, User.__table__, User.id == Token.user_id)
                    .outerjoin(Consent, and_(Consent.user_id == Token.user_id,
                                             Consent.client_pk == Token.client_pk))
                    .where(Token.access_token_hash == digest))
            n = 2000

            def timed(label: str, fn) -> None:  # noqa: ANN001
                for _ in range(50):
                    fn()
                c0, w0 = time.process_time(), time.perf_counter()
                for _ in range(n):
                    fn()
                cpu = (time.process_time() - c0) / n * 1000
                wall = (time.perf_counter() - w0) / n * 1000
                print(f"{label:58s} cpu {cpu:.3f} ms  wall {wall:.3f} ms")

            def orm_select() -> None:
                with Session(engine) as s:
                    s.execute(orm).first()

            def core_select() -> None:
                with engine.connect() as c:
                    c.execute(core).first()

            sql = str(core.compile(engine, compile_kwargs={"literal_binds": True}))
            raw_url = url.replace("postgresql+psycopg://", "postgresql://")
            import psycopg

            raw = psycopg.connect(raw_url, autocommit=True)

            def raw_select() -> None:
                raw.execute(sql, prepare=True).fetchone()

            def orm_select_insert_commit() -> None:
                from servicekonto.audit import AuditTag, record

                with Session(engine) as s:
                    s.execute(orm).first()
                    record(s, AuditTag.OIDC_CLAIMS_RELEASED, actor="client:x",
                           details={"via": "userinfo", "claims": ["sub", "email"]})
                    s.commit()

            timed("ORM: select(Token, User, granted) in a Session", orm_select)
            # The fourth round's layers (docs/performance.md): the userinfo lookup as it runs
            # today, on the app's reader (its own autocommit pool on PostgreSQL), through
            # SQLAlchemy Core and through servicekonto.prepared (the driver's cursor).
            from sqlalchemy import create_engine

            from oidc.userinfo import _LOOKUP
            from servicekonto import prepared

            params = {"digest": digest}
            switched = engine.execution_options(isolation_level="AUTOCOMMIT")
            own_pool = create_engine(engine.url, isolation_level="AUTOCOMMIT",
                                     pool_pre_ping=False)

            def lookup_on(target, fast: bool):  # noqa: ANN001, ANN202
                def run() -> None:
                    with target.connect() as c:
                        if fast:
                            prepared.fetch_first(c, _LOOKUP, params)
                        else:
                            c.execute(_LOOKUP, params).first()
                return run

            timed("lookup, shared pool switched to autocommit, Core", lookup_on(switched, False))
            timed("lookup, own autocommit pool, Core", lookup_on(own_pool, False))
            timed("lookup, own autocommit pool, driver cursor (prepared)",
                  lookup_on(own_pool, True))
            own_pool.dispose()
            timed("Core: same columns as rows on a Connection", core_select)
            timed("raw psycopg: same SQL, prepared, autocommit", raw_select)
            timed("ORM: select + audit record + commit (userinfo's DB work)",
                  orm_select_insert_commit)
            raw.close()
            engine.dispose()


if __name__ == "__main__":
    main()
