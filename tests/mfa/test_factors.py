"""servicekonto.mfa.factors: the enrolled-factor total is one query when every kind can count
in SQL, the same number the kinds' own ``count`` gives, and a kind without ``count_select``
still counts (one query per kind)."""

from __future__ import annotations

import dataclasses

import pytest

from servicekonto.mfa import factors
from tests.accounts.conftest import PASSWORD
from tests.mfa.conftest import enrol_direct


def _citizen(app, email: str) -> int:  # noqa: ANN001
    from servicekonto.accounts.services import create_user
    from servicekonto.db import db

    with app.app_context():
        user = create_user(db.session, email=email, password=PASSWORD, given_name="Erika",
                           family_name="Muster", verified=True)
        db.session.commit()
        return user.id


def _per_kind(app, user_id: int) -> int:  # noqa: ANN001
    from servicekonto.db import db

    with app.app_context():
        return sum(k.count(db.session, user_id) for k in factors.kinds())


def _total(app, user_id: int) -> int:  # noqa: ANN001
    from servicekonto.db import db

    with app.app_context():
        return factors.total_enrolled(db.session, user_id)


def test_total_is_one_query_and_equals_the_kinds_counts(app):
    from sqlalchemy import event

    assert all(k.count_select is not None for k in factors.kinds())
    plain = _citizen(app, "ohne@example.org")
    enrolled = _citizen(app, "mit@example.org")
    enrol_direct(app, enrolled)
    statements: list[str] = []

    def count(_c, _cu, statement, *_a):  # noqa: ANN001, ANN202
        statements.append(statement)

    engine = app.extensions["servicekonto.db"].engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert _total(app, plain) == 0
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1
    assert _total(app, enrolled) == _per_kind(app, enrolled) == 1


def test_a_kind_without_count_select_is_counted_on_its_own(app, monkeypatch):
    user_id = _citizen(app, "drei@example.org")
    enrol_direct(app, user_id)
    extra = dataclasses.replace(factors.kinds()[0], name="test-kind", count_select=None,
                                count=lambda _session, _user_id: 2)
    monkeypatch.setitem(factors._KINDS, "test-kind", extra)
    assert factors.enrolled_total(None) is None
    assert _total(app, user_id) == 3


@pytest.mark.parametrize("with_factor", [False, True])
def test_password_login_reads_the_factor_count_with_the_account(app, with_factor):
    from servicekonto.accounts.authentication import authenticate
    from servicekonto.db import db

    user_id = _citizen(app, f"login{int(with_factor)}@example.org")
    if with_factor:
        enrol_direct(app, user_id)
    with app.test_request_context():
        result = authenticate(db.session, f"login{int(with_factor)}@example.org", PASSWORD,
                              ip="192.0.2.1")
        db.session.commit()
    assert result.user.id == user_id
    assert result.second_factor is with_factor
