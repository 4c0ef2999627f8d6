"""``servicekonto orgs ...`` and ``servicekonto operators ...``: organisations and operator
accounts (the first administrator is made here; later ones also on ``/admin/operators``)."""

from __future__ import annotations

import json
import sys

import click
from flask.cli import with_appcontext


def _session():  # noqa: ANN202
    from servicekonto.db import db

    return db.session


@click.group("orgs")
def orgs() -> None:
    """Organisations that operate portals."""


@orgs.command("create")
@click.argument("name")
@with_appcontext
def orgs_create(name: str) -> None:
    """Create the organisation NAME (e.g. "Stadt Musterstadt")."""
    from servicekonto.portals.services import PortalError, create_organisation

    session = _session()
    try:
        org = create_organisation(session, name, actor="cli")
        session.commit()
    except PortalError as exc:
        session.rollback()
        raise click.ClickException(str(exc)) from None
    click.echo(f"created organisation {org.id} {org.name}")


@orgs.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@with_appcontext
def orgs_list(as_json: bool) -> None:
    """List organisations."""
    from servicekonto.portals.services import list_organisations

    for org in list_organisations(_session()):
        if as_json:
            click.echo(json.dumps({"id": org.id, "name": org.name,
                                   "created_at": org.created_at.isoformat()}))
        else:
            click.echo(f"{org.id}\t{org.name}")


@click.group("operators")
def operators() -> None:
    """Operator and administrator accounts (password plus TOTP)."""


@operators.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--org", "org", help="Organisation id or exact name (required unless --admin).")
@click.option("--admin", is_flag=True, help="An administrator of the Servicekonto.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def operators_create(email: str, name: str, org: str | None, admin: bool,
                     password_stdin: bool) -> None:
    """Create an operator; the first login sets up the authenticator app."""
    from flask_babel import force_locale

    from servicekonto.portals.services import PortalError, create_operator, find_organisation

    session = _session()
    organisation = None
    if org:
        organisation = find_organisation(session, org)
        if organisation is None:
            raise click.ClickException(f"no organisation {org!r} (see: servicekonto orgs list)")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on standard input")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with force_locale("en"):
            operator = create_operator(session, email=email, name=name,
                                       organisation=organisation, password=password,
                                       admin=admin, actor="cli")
        session.commit()
    except PortalError as exc:
        session.rollback()
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {operator.role} {operator.id} <{operator.email}>"
               + (f" of {organisation.name}" if organisation else ""))


@operators.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@with_appcontext
def operators_list(as_json: bool) -> None:
    """List operators."""
    from servicekonto.portals.services import list_operators

    for op in list_operators(_session()):
        status = ("disabled" if op.disabled_at else
                  "active" if op.totp_confirmed_at else "totp-not-enrolled")
        org = op.organisation.name if op.organisation else ""
        if as_json:
            click.echo(json.dumps({"id": op.id, "email": op.email, "name": op.name,
                                   "role": op.role, "organisation": org or None,
                                   "status": status}))
        else:
            click.echo(f"{op.id}\t{op.email}\t{op.role}\t{status}\t{org}")


def _operator(email: str):  # noqa: ANN202
    from servicekonto.portals.services import find_operator

    operator = find_operator(_session(), email)
    if operator is None:
        raise click.ClickException(f"no operator {email}")
    return operator


@operators.command("disable")
@click.argument("email")
@with_appcontext
def operators_disable(email: str) -> None:
    """Disable the operator EMAIL (their sessions end at the next request)."""
    from servicekonto.portals.services import disable_operator

    operator = _operator(email)
    disable_operator(_session(), operator, actor="cli")
    _session().commit()
    click.echo(f"disabled operator {operator.id} <{operator.email}>")


@operators.command("reset-totp")
@click.argument("email")
@with_appcontext
def operators_reset_totp(email: str) -> None:
    """Forget EMAIL's authenticator: the next login enrols a new one."""
    from servicekonto.portals.services import reset_totp

    operator = _operator(email)
    reset_totp(_session(), operator, actor="cli")
    _session().commit()
    click.echo(f"reset the authenticator of operator {operator.id} <{operator.email}>")
