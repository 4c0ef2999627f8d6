"""Shared plumbing of the operator and administrator pages: who is logged in, access checks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import g, redirect, request, url_for
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import NotFound

from oidc.models import Client
from servicekonto.db import db
from servicekonto.errors import ServicekontoError
from servicekonto.portals import auth
from servicekonto.portals.models import Operator


class Forbidden(ServicekontoError):
    status = 403
    code = "forbidden"
    title = _l("Access denied")


def current_operator() -> Operator | None:
    if "operator" in g:
        return g.operator
    state, expired = auth.current()
    operator = None
    if state is not None:
        operator = db.session.get(Operator, state.operator_id)
        if operator is None or operator.disabled_at is not None:
            auth.end()
            operator = None
    g.operator = operator
    g.operator_expired = expired
    return operator


def _to_login() -> Any:
    args: dict[str, Any] = {}
    if request.method == "GET":
        args["next"] = request.full_path.rstrip("?")
    if g.get("operator_expired"):
        args["expired"] = "1"
    return redirect(url_for("operators.login", **args))


def operator_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_operator() is None:
            return _to_login()
        return view(*args, **kwargs)
    return wrapper


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        operator = current_operator()
        if operator is None:
            return _to_login()
        if not operator.is_admin:
            raise Forbidden(str(_l("Only administrators may open this page.")))
        return view(*args, **kwargs)
    return wrapper


def client_or_404(client_id: str) -> Client:
    from oidc.clients import get_client

    client = get_client(client_id, session=db.session, include_inactive=True)
    if client is None:
        raise NotFound()
    return client


def portal_for(client_id: str, *, admins_too: bool = False) -> Client:
    """A portal of the logged-in operator's organisation (admins: any with ``admins_too``)."""
    client = client_or_404(client_id)
    operator = current_operator()
    assert operator is not None
    if admins_too and operator.is_admin:
        return client
    if operator.organisation_id is None or client.organisation_id != operator.organisation_id:
        raise Forbidden(str(_l("This portal belongs to another organisation.")))
    return client
