"""A password login's database statements (CI guard for the login path, issue #7).

Counted like tests/perf/test_query_counts.py (a ``before_cursor_execute`` listener on the app's
engine during the one form post; a committed transaction adds its BEGIN and COMMIT). A login is
not one of the hot paths with a round-trip limit: it reads the session row and the account with
its number of second factors (one query; both autocommit: the Argon2id hash holds no
connection), then writes the rotated session with the login's audit entry as one unit
(``ServerSideSession.audit_with_write``, ``SessionStore.replace``):

* PostgreSQL: one autocommit statement (the upsert with the DELETE of the old row and the
  audit INSERT as data-modifying CTEs): 3 statements, 3 round trips (9 before, 11 before the
  factor counts joined the account read);
* SQLite: DELETE, upsert and audit INSERT in one transaction: 5 statements, 7 round trips.

Any change shows here at once.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ON_POSTGRES
from tests.oidc.conftest import PASSWORD, Provider
from tests.perf.test_query_counts import counting, round_trips
from tests.support.forms import parse_forms

LOGIN_STATEMENTS = 3 if ON_POSTGRES else 5
LOGIN_ROUND_TRIPS = 3 if ON_POSTGRES else 7


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"audit_seal_after_commit": False}


def test_password_login(provider: Provider):
    email = provider.citizen()
    browser = provider.browser()
    browser.login(email)  # warm caches and pools, then a fresh browser
    browser = provider.browser()
    page = browser.http.get(provider.base + "/login")
    fields = {**parse_forms(page.text)[0]["fields"], "email": email,
              "password": PASSWORD}
    with counting(provider) as counter:
        response = browser.http.post(provider.base + "/login", data=fields,
                                     allow_redirects=False)
    assert response.status_code == 302, response.text[:300]
    listing = "\n".join(counter.statements)
    statements = [s for s in counter.statements if not s.startswith(("BEGIN", "COMMIT"))]
    assert len(statements) == LOGIN_STATEMENTS, listing
    assert round_trips(counter.statements) == LOGIN_ROUND_TRIPS, listing
    audit_inserts = [s for s in counter.statements if "INSERT INTO audit_events" in s]
    assert len(audit_inserts) == 1, listing
    # ... and that one write left both: the entry and the session it opened
    from sqlalchemy import select

    from servicekonto.audit.models import AuditEvent
    from servicekonto.audit.tags import AuditTag
    from servicekonto.db import db

    with provider.app.app_context():
        tags = db.session.scalars(select(AuditEvent.tag).where(
            AuditEvent.subject_user_id == provider.user_id(email))).all()
    assert tags.count(str(AuditTag.ACCOUNT_LOGIN_SUCCESS)) == 2  # the warm-up and this one
    account = browser.http.get(provider.base + "/account", allow_redirects=False)
    assert account.status_code == 200
