"""The ``servicekonto`` command line: scriptable, exits non-zero on failure.

Every command builds the app from the same settings as the web service (SERVICEKONTO_CONFIG,
SERVICEKONTO_* variables), so ``servicekonto db upgrade`` migrates the database the service uses.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError

from servicekonto.settings import SettingsError


def _create_app():  # noqa: ANN202 - FlaskGroup calls this lazily
    from servicekonto import create_app

    try:
        return create_app()
    except SettingsError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None


class _Group(FlaskGroup):
    """FlaskGroup whose database errors become one clear line instead of a traceback.

    Only our own commands exist, so listing them (``--help``) never loads the app: a broken
    configuration is reported by the command that needs it, not as a traceback in the help.
    Flask's ``-e/-A/--debug`` options are dropped; settings come from SERVICEKONTO_*.
    """

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.params = [p for p in self.params if p.name not in {"env_file", "app", "debug"}]

    def list_commands(self, ctx: click.Context) -> list[str]:
        return click.Group.list_commands(self, ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return click.Group.get_command(self, ctx, name)

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        try:
            return super().invoke(ctx)
        except (OperationalError, ProgrammingError) as exc:
            reason = " ".join(str(exc.orig).split())  # one line, even for multi-line messages
            raise click.ClickException(
                f"database not reachable or not migrated: {reason}") from None


@click.group(cls=_Group, create_app=_create_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False, set_debug_flag=False)
def main() -> None:
    """Servicekonto administration."""


# -- database -------------------------------------------------------------------------------

@main.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    from servicekonto.db import get_db
    from servicekonto.migrate import current_revision, upgrade

    engine = get_db().engine
    upgrade(engine, revision)
    click.echo(f"database at revision {current_revision(engine)}")


@db.command("current")
@with_appcontext
def db_current() -> None:
    """Show the applied revision and the newest one available."""
    from servicekonto.db import get_db
    from servicekonto.migrate import current_revision, head_revision

    current, head = current_revision(get_db().engine), head_revision()
    click.echo(f"current: {current or '(empty database)'}\nhead: {head}")
    if current != head:
        sys.exit(1)


# -- users ----------------------------------------------------------------------------------

@main.group()
def users() -> None:
    """Citizen accounts."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--given-name", required=True)
@click.option("--family-name", required=True)
@click.option("--verified", is_flag=True, help="Mark the e-mail address as verified.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def users_create(email: str, given_name: str, family_name: str, verified: bool,
                 password_stdin: bool) -> None:
    """Create a citizen account."""
    from servicekonto.accounts.emails import InvalidEmail
    from servicekonto.accounts.services import AccountError, create_user
    from servicekonto.db import db as database

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on standard input")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    from flask_babel import force_locale

    session = database.session
    try:
        with force_locale("en"):  # operator messages (password policy) in the CLI's language
            user = create_user(session, email=email, password=password, given_name=given_name,
                               family_name=family_name, verified=verified, actor="cli")
        session.commit()
    except (AccountError, InvalidEmail) as exc:
        session.rollback()
        raise click.ClickException(str(exc)) from None
    click.echo(f"created user {user.id} <{user.email}>" + (" (verified)" if verified else ""))


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@with_appcontext
def users_list(as_json: bool) -> None:
    """List citizen accounts."""
    from servicekonto.accounts.models import User
    from servicekonto.db import db as database

    for user in database.session.scalars(select(User).order_by(User.id)):
        status = "disabled" if user.is_disabled else ("verified" if user.is_verified else
                                                      "unverified")
        if as_json:
            click.echo(json.dumps({"id": user.id, "email": user.email, "status": status,
                                   "given_name": user.given_name,
                                   "family_name": user.family_name,
                                   "created_at": user.created_at.isoformat()}))
        else:
            click.echo(f"{user.id}\t{user.email}\t{status}\t{user.full_name}")


def _set_disabled(email: str, disabled: bool) -> None:
    from servicekonto.accounts.services import find_by_email, set_disabled
    from servicekonto.db import db as database

    session = database.session
    user = find_by_email(session, email)
    if user is None:
        raise click.ClickException(f"no account with e-mail {email}")
    set_disabled(session, user, disabled, actor="cli")
    session.commit()
    if disabled:
        _end_every_session(user.id)
    click.echo(f"user {user.id} {'disabled' if disabled else 'enabled'}")


def _end_every_session(user_id: int) -> None:
    """End the account's sessions and tell their portals (back-channel logout), like a logout.

    The store is changed outside the database session's transaction (SQLite: one writer)."""
    from servicekonto.console.services import end_sessions
    from servicekonto.db import db as database

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    end_sessions(app, app.extensions["servicekonto.session_store"], user_id)
    database.session.commit()
    deliveries = app.extensions.get("servicekonto.backchannel")
    if deliveries is not None and not deliveries.wait(30):
        click.echo("some portals did not answer yet; 'servicekonto logout deliver' retries",
                   err=True)


@users.command("disable")
@click.argument("email")
@with_appcontext
def users_disable(email: str) -> None:
    """Disable an account and end its sessions."""
    _set_disabled(email, True)


@users.command("enable")
@click.argument("email")
@with_appcontext
def users_enable(email: str) -> None:
    """Re-enable a disabled account."""
    _set_disabled(email, False)


@users.command("reset-second-factors")
@click.argument("email")
@with_appcontext
def users_reset_second_factors(email: str) -> None:
    """Remove every second factor and recovery code of an account (lost phone and codes)."""
    from servicekonto.accounts.services import find_by_email
    from servicekonto.db import db as database
    from servicekonto.mfa import factors
    from servicekonto.mfa.services import reset_second_factors

    session = database.session
    user = find_by_email(session, email)
    if user is None:
        raise click.ClickException(f"no account with e-mail {email}")
    removed = reset_second_factors(session, user, actor="cli")
    session.commit()
    mailed = factors.send_security_mail(user, "second_factors_reset")
    summary = ", ".join(f"{name}: {count}" for name, count in removed.items())
    click.echo(f"user {user.id}: second factors removed ({summary})"
               + ("" if mailed else "; the notice mail could not be sent"))


# -- audit ----------------------------------------------------------------------------------

@main.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
@with_appcontext
def audit_verify() -> None:
    """Check every sealed entry; exit 1 at the first broken link."""
    from servicekonto.audit.service import verify
    from servicekonto.db import get_db

    result = verify(get_db().engine)
    if not result.ok:
        where = f"sequence {result.broken_seq}"
        if result.broken_event_id is not None:
            where += f" (event id {result.broken_event_id})"
        click.echo(f"BROKEN at {where}: {result.reason}; {result.sealed} entries verified "
                   "before it", err=True)
        sys.exit(1)
    click.echo(f"ok: {result.sealed} sealed entries verified, {result.unsealed} not sealed yet")


@audit.command("seal")
@with_appcontext
def audit_seal() -> None:
    """Seal entries that are not chained yet (for cron when sealing after commit is off)."""
    from servicekonto.audit.service import seal
    from servicekonto.db import get_db

    count = seal(get_db().engine, current_app.config["SERVICEKONTO"]["audit_seal_batch_size"])
    click.echo(f"sealed {count} entries")


# -- sessions -------------------------------------------------------------------------------

@main.group()
def sessions() -> None:
    """Server-side web sessions."""


@sessions.command("purge")
@with_appcontext
def sessions_purge() -> None:
    """Delete expired sessions (database store; Redis expires them itself)."""
    removed = current_app.extensions["servicekonto.session_store"].purge_expired()
    click.echo(f"removed {removed} expired sessions")


# -- development ----------------------------------------------------------------------------

DEMO_EMAIL = "erika.mustermann@example.org"


@main.command("seed")
@with_appcontext
def seed() -> None:
    """Create the demo citizen (idempotent; development only). Prints its credentials."""
    from servicekonto.accounts.services import create_user, find_by_email
    from servicekonto.db import db as database

    settings = current_app.config["SERVICEKONTO"]
    if settings["env"] == "production":
        raise click.ClickException("seed is for development, not production")
    credentials = Path(settings["instance_path"]) / "demo-credentials.json"
    session = database.session
    user = find_by_email(session, DEMO_EMAIL)
    if user is None or not credentials.exists():
        password = "Demo-" + secrets.token_urlsafe(9)
        if user is None:
            user = create_user(session, email=DEMO_EMAIL, password=password,
                               given_name="Erika", family_name="Mustermann", verified=True,
                               actor="cli")
        else:
            from servicekonto.accounts.passwords import hash_password

            user.password_hash = hash_password(password)
        import datetime as dt

        user.birthdate = user.birthdate or dt.date(1964, 8, 12)
        user.street_address = user.street_address or "Heidestraße 17"
        user.postal_code = user.postal_code or "51147"
        user.locality = user.locality or "Musterstadt"
        user.country = user.country or "DE"
        session.commit()
        credentials.parent.mkdir(parents=True, exist_ok=True)
        credentials.write_text(json.dumps({"email": DEMO_EMAIL, "password": password}))
        credentials.chmod(0o600)
    data = json.loads(credentials.read_text())
    click.echo(f"demo citizen: {data['email']} / password: {data['password']}")


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def serve(host: str, port: int) -> None:
    """Run the development server (production: gunicorn wsgi:app)."""
    from werkzeug.serving import run_simple

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    issuer = current_app.config["SERVICEKONTO"]["issuer"]
    # Open the issuer's address (localhost, not the bound IP): cookies and passkeys are tied to it.
    click.echo(f"Servicekonto on {issuer}/  (listening on http://{host}:{port}/; Ctrl+C stops)")
    run_simple(host, port, app, use_reloader=False, threaded=True)


# -- OpenID Connect: signing keys and portals (oidc/cli.py) ---------------------------------

from oidc.cli import clients, keys  # noqa: E402

main.add_command(keys)
main.add_command(clients)


# -- back-channel logout deliveries (oidc/backchannel.py) and the demo portals (demo/) ------

from oidc.backchannel import logout_cli  # noqa: E402

main.add_command(logout_cli)


from demo.seed import seed_demo_portals  # noqa: E402 - development only; refuses production

main.add_command(seed_demo_portals)


# -- organisations and operator accounts (servicekonto/portals/cli.py) -----------------------

from servicekonto.portals.cli import operators, orgs  # noqa: E402

main.add_command(orgs)
main.add_command(operators)
