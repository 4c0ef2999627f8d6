"""A password login's database statements (CI guard for the login path, issue #7).

Counted like tests/perf/test_query_counts.py (a ``before_cursor_execute`` listener on the app's
engine during the one form post; a committed transaction adds its BEGIN and COMMIT). A login is
not one of the hot paths with a round-trip limit: it reads the session row and the account with
its number of second factors (one query; both autocommit: the Argon2id hash holds no
connection), then writes its audit entry in one transaction, and rotates the session (delete
the old row and upsert the new one in one transaction of the session store:
``SessionStore.replace``). Five statements in two transactions: 9 round trips (11 before the
factor counts joined the account read); any change shows here at once.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.oidc.conftest import PASSWORD, Provider
from tests.perf.test_query_counts import counting, round_trips
from tests.support.forms import parse_forms

LOGIN_STATEMENTS = 5
LOGIN_ROUND_TRIPS = 9


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
    assert sum(s.startswith("INSERT INTO audit_events") for s in counter.statements) == 1, listing
