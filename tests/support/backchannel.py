"""Waiting for back-channel logout deliveries in tests (``oidc.backchannel``).

A logout's commit starts a thread that delivers the rows it queued. That thread is not always
the one that sends them: another worker (the opportunistic retry pass of an earlier logout's
thread, the ``logout deliver`` command) may claim a fresh row first, and then the logout's own
thread finds nothing left to do and ends at once while the other worker's POST is still on its
way. So "the threads have finished" is not "the portals got their tokens": tests wait for
both, the threads and the first attempt at every queued row.
"""

from __future__ import annotations

import time

from flask import Flask
from sqlalchemy import select


def pending_first_attempts(app: Flask) -> list[dict]:
    """Deliveries not yet attempted at all (queued, or claimed and in flight)."""
    from oidc.models import LogoutDelivery
    from servicekonto.db import db

    with app.app_context():
        rows = db.session.scalars(select(LogoutDelivery).where(
            LogoutDelivery.delivered_at.is_(None), LogoutDelivery.failed_at.is_(None),
            LogoutDelivery.attempts == 0)).all()
        return [{"id": d.id, "client_pk": d.client_pk, "sid": d.sid,
                 "created_at": d.created_at, "next_attempt_at": d.next_attempt_at}
                for d in rows]


def wait_for_deliveries(app: Flask, timeout: float = 20.0) -> None:
    """Until the delivery threads have finished and every queued delivery has had its first
    attempt (delivered, given up or waiting for a retry); fails with the rows otherwise."""
    deadline = time.monotonic() + timeout
    assert app.extensions["servicekonto.backchannel"].wait(timeout), "delivery threads hang"
    while pending := pending_first_attempts(app):
        if time.monotonic() > deadline:
            raise AssertionError(f"back-channel deliveries never attempted: {pending}")
        time.sleep(0.02)
