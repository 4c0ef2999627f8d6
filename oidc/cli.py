"""``servicekonto keys …`` and ``servicekonto clients …`` (registered in servicekonto/cli.py).

Output is English (for operators); ``--json`` prints one JSON object for scripts. Failures
print one line and exit non-zero.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select


def _settings() -> dict[str, Any]:
    return current_app.config["SERVICEKONTO"]


# -- keys -------------------------------------------------------------------------------------

@click.group()
def keys() -> None:
    """Provider signing keys (published in the JWKS)."""


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@with_appcontext
def keys_list(as_json: bool) -> None:
    """List every signing key and its state (active, pending, retired, unpublished)."""
    from oidc.keys import list_keys
    from servicekonto.db import utcnow

    now = utcnow()
    infos = list_keys()
    signing = {}
    for info in infos:
        if info.signs_at(now):
            best = signing.get(info.alg)
            if best is None or (info.not_before, info.created_at) > (best.not_before,
                                                                       best.created_at):
                signing[info.alg] = info
    for info in infos:
        state = info.state(now)
        if state == "active" and signing.get(info.alg) is not info:
            state = "superseded"
        iso = lambda value: value.isoformat() if value else None  # noqa: E731
        if as_json:
            click.echo(json.dumps({"kid": info.kid, "alg": info.alg, "state": state,
                                   "signing": signing.get(info.alg) is info,
                                   "created_at": iso(info.created_at),
                                   "not_before": iso(info.not_before),
                                   "retired_at": iso(info.retired_at),
                                   "unpublish_at": iso(info.unpublish_at)}))
        else:
            marker = "*" if signing.get(info.alg) is info else " "
            click.echo(f"{marker} {info.kid}\t{info.alg}\t{state}\tnot_before="
                       f"{iso(info.not_before)}\tretired_at={iso(info.retired_at) or '-'}"
                       f"\tunpublish_at={iso(info.unpublish_at) or '-'}")
    if not infos and not as_json:
        click.echo("no signing keys yet (created on first start or first use)")


@keys.command("rotate")
@click.option("--alg", "algs", multiple=True,
              help="Algorithm to rotate (repeatable; default: every configured algorithm).")
@click.option("--now", "immediately", is_flag=True,
              help="Emergency: the new key signs at once (no publish lead time).")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def keys_rotate(algs: tuple[str, ...], immediately: bool, as_json: bool) -> None:
    """Create new signing keys; they sign after signing_key_publish_lead_seconds."""
    from oidc.keys import SigningKeyError, rotate

    selected = list(algs) or list(_settings()["id_token_signing_algs"])
    for alg in selected:
        try:
            info = rotate(alg, immediately=immediately, actor="cli")
        except SigningKeyError as exc:
            raise click.ClickException(str(exc)) from None
        if as_json:
            click.echo(json.dumps({"kid": info.kid, "alg": info.alg,
                                   "not_before": info.not_before.isoformat()}))
        else:
            click.echo(f"created {info.alg} key {info.kid}: published now, signs from "
                       f"{info.not_before.isoformat()}; the key it replaces retires then")


@keys.command("retire")
@click.argument("kid")
@click.option("--force", is_flag=True,
              help="Also when no other key of its algorithm can sign "
                   "(a new one is created on next use).")
@with_appcontext
def keys_retire(kid: str, force: bool) -> None:
    """Stop signing with KID; it stays published until its last token expired."""
    from oidc.keys import SigningKeyError, retire

    try:
        info = retire(kid, actor="cli", force=force)
    except SigningKeyError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"retired {info.alg} key {info.kid}; published until "
               f"{info.unpublish_at.isoformat() if info.unpublish_at else '-'}")


# -- clients ----------------------------------------------------------------------------------

@click.group()
def clients() -> None:
    """Portals (OpenID Connect clients)."""


def _read_jwks_file(path: str | None) -> dict[str, Any] | None:
    if not path:
        return None
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        return json.loads(text)
    except OSError as exc:
        raise click.ClickException(f"cannot read --jwks-file: {exc.strerror}") from None
    except ValueError:
        raise click.ClickException("--jwks-file is not JSON") from None


@clients.command("create")
@click.option("--name", required=True, help="Name shown to citizens.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI "
              "(repeatable).")
@click.option("--post-logout-redirect-uri", "post_logout_redirect_uris", multiple=True)
@click.option("--scope", "scopes", multiple=True,
              help="Allowed scopes, space separated or repeated (default: openid).")
@click.option("--grant-type", "grant_types", multiple=True,
              type=click.Choice(["authorization_code", "refresh_token", "client_credentials"]),
              help="Repeatable (default: authorization_code).")
@click.option("--auth-method", default="client_secret_basic", show_default=True,
              type=click.Choice(["client_secret_basic", "client_secret_post",
                                 "private_key_jwt", "none"]),
              help="none makes a public client (PKCE).")
@click.option("--subject-type", default="pairwise", show_default=True,
              type=click.Choice(["pairwise", "public"]))
@click.option("--alg", default="RS256", show_default=True,
              help="id_token_signed_response_alg.")
@click.option("--sector-identifier-uri", default=None)
@click.option("--backchannel-logout-uri", default=None)
@click.option("--backchannel-logout-session-required", is_flag=True)
@click.option("--jwks-uri", default=None)
@click.option("--jwks-file", default=None, help="JWK Set file with the public keys ('-': stdin).")
@click.option("--operator", default=None, help="Organisation operating the portal.")
@click.option("--contact", "contacts", multiple=True)
@click.option("--always-refresh", is_flag=True,
              help="Issue refresh tokens on every code exchange.")
@click.option("--pending", is_flag=True, help="Create suspended for approval (status pending).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the created client (with client_secret) as one JSON object.")
@with_appcontext
def clients_create(name: str, redirect_uris: tuple[str, ...],
                   post_logout_redirect_uris: tuple[str, ...], scopes: tuple[str, ...],
                   grant_types: tuple[str, ...], auth_method: str, subject_type: str, alg: str,
                   sector_identifier_uri: str | None, backchannel_logout_uri: str | None,
                   backchannel_logout_session_required: bool, jwks_uri: str | None,
                   jwks_file: str | None, operator: str | None, contacts: tuple[str, ...],
                   always_refresh: bool, pending: bool, as_json: bool) -> None:
    """Register a portal. The client secret is shown once and stored only hashed."""
    from oidc.clients import InvalidClientMetadata, client_metadata, create_client
    from oidc.models import ClientStatus
    from servicekonto.db import db as database

    session = database.session
    try:
        client, secret = create_client(
            session, name=name, redirect_uris=list(redirect_uris),
            post_logout_redirect_uris=list(post_logout_redirect_uris),
            scope=list(scopes) if scopes else "openid",
            grant_types=list(grant_types) or None, auth_method=auth_method,
            subject_type=subject_type, id_token_signed_response_alg=alg,
            sector_identifier_uri=sector_identifier_uri,
            backchannel_logout_uri=backchannel_logout_uri,
            backchannel_logout_session_required=backchannel_logout_session_required,
            jwks=_read_jwks_file(jwks_file), jwks_uri=jwks_uri, operator=operator,
            contacts=list(contacts), always_issue_refresh_token=always_refresh,
            status=ClientStatus.PENDING if pending else ClientStatus.ACTIVE, actor="cli")
        session.commit()
    except InvalidClientMetadata as exc:
        session.rollback()
        raise click.ClickException(f"invalid {exc.field}: {exc.description}") from None
    data = client_metadata(client)
    if secret is not None:
        data["client_secret"] = secret
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(f"created client {client.client_id} ({client.client_name})")
    click.echo(f"  auth method: {client.token_endpoint_auth_method}"
               + ("  (public client: PKCE required)" if client.is_public else ""))
    if secret is not None:
        click.echo(f"  client secret: {secret}")
        click.echo("  (shown only now; it is stored hashed)")


def _lookup(client_id: str) -> Any:
    from oidc.clients import ClientNotFound, require_client
    from servicekonto.db import db as database

    try:
        return require_client(database.session, client_id)
    except ClientNotFound as exc:
        raise click.ClickException(str(exc)) from None


@clients.command("list")
@click.option("--status", type=click.Choice(["pending", "active", "suspended"]), default=None,
              help="Only portals with this status (e.g. pending: waiting for approval).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@with_appcontext
def clients_list(status: str | None, as_json: bool) -> None:
    """List portals."""
    from oidc.clients import client_metadata
    from oidc.models import Client
    from servicekonto.db import db as database

    stmt = select(Client).order_by(Client.id)
    if status:
        stmt = stmt.where(Client.status == status)
    for client in database.session.scalars(stmt):
        if as_json:
            click.echo(json.dumps(client_metadata(client)))
        else:
            click.echo(f"{client.client_id}\t{client.status}\t"
                       f"{client.token_endpoint_auth_method}\t{client.client_name}")


@clients.command("show")
@click.argument("client_id")
@with_appcontext
def clients_show(client_id: str) -> None:
    """Show a portal's registration as JSON (never its secret)."""
    from oidc.clients import client_metadata

    click.echo(json.dumps(client_metadata(_lookup(client_id)), indent=2))


@clients.command("suspend")
@click.argument("client_id")
@with_appcontext
def clients_suspend(client_id: str) -> None:
    """Suspend a portal: no more logins or token requests, its tokens are revoked at once."""
    _suspend(client_id)


@clients.command("disable")
@click.argument("client_id")
@with_appcontext
def clients_disable(client_id: str) -> None:
    """Alias of suspend."""
    _suspend(client_id)


def _suspend(client_id: str) -> None:
    from oidc.clients import set_status
    from oidc.models import ClientStatus
    from servicekonto.db import db as database

    client = _lookup(client_id)
    if client.status == ClientStatus.SUSPENDED:
        raise click.ClickException(f"client {client_id} is already suspended")
    revoked = set_status(database.session, client, ClientStatus.SUSPENDED, actor="cli")
    database.session.commit()
    click.echo(f"client {client_id} suspended; {revoked} tokens revoked")


@clients.command("enable")
@click.argument("client_id")
@with_appcontext
def clients_enable(client_id: str) -> None:
    """Re-activate a suspended or pending portal."""
    from oidc.clients import set_status
    from oidc.models import ClientStatus
    from servicekonto.db import db as database

    client = _lookup(client_id)
    set_status(database.session, client, ClientStatus.ACTIVE, actor="cli")
    database.session.commit()
    click.echo(f"client {client_id} active")


@clients.command("rotate-secret")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def clients_rotate_secret(client_id: str, as_json: bool) -> None:
    """Give a portal a new client secret (the old one stops working at once)."""
    from oidc.clients import InvalidClientMetadata, rotate_secret
    from servicekonto.db import db as database

    client = _lookup(client_id)
    try:
        secret = rotate_secret(database.session, client, actor="cli")
    except InvalidClientMetadata as exc:
        raise click.ClickException(exc.description) from None
    database.session.commit()
    if as_json:
        click.echo(json.dumps({"client_id": client_id, "client_secret": secret}))
    else:
        click.echo(f"new client secret for {client_id}: {secret}\n(shown only now)")


@clients.command("approve")
@click.argument("client_id")
@with_appcontext
def clients_approve(client_id: str) -> None:
    """Approve a pending portal (registered by an operator): it becomes active."""
    from oidc.clients import ClientError, approve_client
    from servicekonto.db import db as database

    client = _lookup(client_id)
    try:
        approve_client(database.session, client, actor="cli")
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    database.session.commit()
    claims = ("every claim of its scopes" if client.allowed_claims is None
              else ", ".join(client.allowed_claims) or "no personal claims")
    click.echo(f"client {client_id} approved (active); scope: {client.scope}; "
               f"claims: {claims}")


@clients.command("delete")
@click.argument("client_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def clients_delete(client_id: str, yes: bool) -> None:
    """Delete a portal: its tokens are revoked, its codes, tokens and consents removed."""
    from oidc.clients import delete_client
    from servicekonto.db import db as database

    client = _lookup(client_id)
    if not yes:
        if not sys.stdin.isatty():
            raise click.ClickException("refusing to delete without --yes (no terminal to "
                                       "ask on)")
        click.confirm(f"Delete portal {client_id} ({client.client_name})?", abort=True,
                      err=True)
    name = client.client_name
    revoked = delete_client(database.session, client, actor="cli")
    database.session.commit()
    click.echo(f"client {client_id} ({name}) deleted; {revoked} tokens revoked")


# -- initial access tokens (RFC 7591 registration) ----------------------------------------------

_DURATION_UNITS = {"m": 60, "h": 3600, "d": 86400}


def _parse_expires(value: str) -> Any:
    """``never``, a duration (``90m``, ``12h``, ``30d``) or an ISO 8601 time (UTC if naive)."""
    import datetime as dt

    from servicekonto.db import utcnow

    text = value.strip().lower()
    if text in ("never", "none", ""):
        return None
    if text[:-1].isdigit() and text[-1] in _DURATION_UNITS:
        return utcnow() + dt.timedelta(seconds=int(text[:-1]) * _DURATION_UNITS[text[-1]])
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter("use never, a duration such as 30d, 12h, 90m, or an ISO "
                                 "8601 time", param_hint="--expires") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _token_json(row: Any) -> dict[str, Any]:
    from servicekonto.portals.initial_tokens import token_state

    iso = lambda value: value.isoformat() if value else None  # noqa: E731
    return {"id": row.id, "organisation": row.organisation.name,
            "organisation_id": row.organisation_id, "scope": row.scope,
            "pre_approved": row.pre_approved, "uses_left": row.uses_left,
            "expires_at": iso(row.expires_at), "state": token_state(row),
            "created_by": row.created_by, "created_at": iso(row.created_at),
            "revoked_at": iso(row.revoked_at)}


@clients.command("initial-token")
@click.option("--operator", "organisation", required=True,
              help="Organisation (name) whose portals register with it; created if missing.")
@click.option("--scopes", default="openid", show_default=True,
              help='Scopes its portals may ask for, e.g. "openid profile email".')
@click.option("--uses", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many registrations it allows.")
@click.option("--unlimited-uses", is_flag=True, help="No limit on registrations (until it "
              "expires or is revoked).")
@click.option("--expires", "expires", default="7d", show_default=True,
              help="never, a duration (30d, 12h, 90m) or an ISO 8601 time.")
@click.option("--pre-approved", is_flag=True,
              help="Its portals are active at once (otherwise pending until approved).")
@with_appcontext
def clients_initial_token(organisation: str, scopes: str, uses: int, unlimited_uses: bool,
                          expires: str, pre_approved: bool) -> None:
    """Issue an initial access token for RFC 7591 registration.

    Prints the token alone on standard output (shown once; stored hashed), everything else
    on standard error: TOKEN=$(servicekonto clients initial-token --operator "Stadt X").
    """
    from servicekonto.db import db as database
    from servicekonto.portals.initial_tokens import (
        InitialTokenUsageError,
        find_or_create_organisation,
        issue_initial_token,
    )

    session = database.session
    expires_at = _parse_expires(expires)
    try:
        org, created = find_or_create_organisation(session, organisation, actor="cli")
        row, plain = issue_initial_token(
            session, organisation=org, scope=scopes, pre_approved=pre_approved,
            uses=None if unlimited_uses else uses, expires_at=expires_at, actor="cli")
        session.commit()
    except InitialTokenUsageError as exc:
        session.rollback()
        raise click.ClickException(str(exc)) from None
    if created:
        click.echo(f"created organisation {org.name!r} (id {org.id})", err=True)
    click.echo(f"initial access token {row.id} for {org.name}: scope {row.scope!r}, "
               f"{'unlimited uses' if row.uses_left is None else f'{row.uses_left} use(s)'}, "
               f"expires {row.expires_at.isoformat() if row.expires_at else 'never'}, "
               f"{'pre-approved' if row.pre_approved else 'portals pending approval'}",
               err=True)
    click.echo(plain)


@clients.command("initial-tokens")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@with_appcontext
def clients_initial_tokens(as_json: bool) -> None:
    """List initial access tokens (never their values)."""
    from servicekonto.db import db as database
    from servicekonto.portals.initial_tokens import list_initial_tokens

    for row in list_initial_tokens(database.session):
        data = _token_json(row)
        if as_json:
            click.echo(json.dumps(data))
        else:
            uses = "unlimited" if data["uses_left"] is None else data["uses_left"]
            click.echo(f"{data['id']}\t{data['state']}\t{data['organisation']}\t"
                       f"scope={data['scope']}\tuses_left={uses}\t"
                       f"expires={data['expires_at'] or 'never'}\t"
                       f"{'pre-approved' if data['pre_approved'] else 'approval'}")


@clients.command("revoke-initial-token")
@click.argument("token_id", type=int)
@with_appcontext
def clients_revoke_initial_token(token_id: int) -> None:
    """Revoke an initial access token by its id (portals registered with it stay)."""
    from servicekonto.db import db as database
    from servicekonto.portals.initial_tokens import InitialTokenUsageError, revoke_initial_token

    try:
        revoke_initial_token(database.session, token_id, actor="cli")
    except InitialTokenUsageError as exc:
        raise click.ClickException(str(exc)) from None
    database.session.commit()
    click.echo(f"initial access token {token_id} revoked")
