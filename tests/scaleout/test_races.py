"""Races between instances that the database must decide (found by bench/soak.py)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

pytestmark = pytest.mark.postgres


def test_two_first_consents_at_once_both_succeed_and_merge(app):
    """Two tabs or two instances granting a portal at the same moment: no 503, one row with
    both grants (before: the loser hit uq_consents_user_client and got a 503)."""
    from oidc.clients import create_client
    from servicekonto.accounts.services import create_user
    from servicekonto.consent.models import Consent
    from servicekonto.consent.service import grant
    from servicekonto.db import db

    with app.app_context():
        user = create_user(db.session, email="race@example.org", password="Sonnenblume-42-x!",
                           given_name="Erika", family_name="Mustermann", verified=True)
        client, _secret = create_client(db.session, name="Portal", scope="openid profile email",
                                        redirect_uris=["https://portal.example/cb"])
        db.session.commit()
        user_id, client_pk = user.id, client.id
    engine = app.extensions["servicekonto.db"].engine
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with Session(engine) as session, session.begin():
                from oidc.models import Client

                other = session.get(Client, client_pk)
                grant(session, user_id=user_id, client=other, scopes={"email"},
                      claims={"email"})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    from oidc.models import Client

    with Session(engine) as first, first.begin():
        grant(first, user_id=user_id, client=first.get(Client, client_pk), scopes={"profile"},
              claims={"given_name"})
        first.flush()  # the row exists in this open transaction
        worker = threading.Thread(target=second)
        worker.start()
        time.sleep(0.5)  # the second insert now waits on the unique index
    worker.join(10)
    assert not errors, errors
    with Session(engine) as session:
        rows = session.scalars(select(Consent).where(Consent.user_id == user_id)).all()
        assert len(rows) == 1
        assert {"openid", "profile", "email"} <= set(rows[0].granted_scopes)
        assert {"given_name", "email"} <= set(rows[0].granted_claims)
        assert session.scalar(select(func.count()).select_from(Consent)) == 1
