"""``servicekonto seed-demo-portals``: register the two demo portals as clients, once.

Idempotent: a portal listed in ``instance/demo-portals.json`` whose client still exists is left
alone; a portal whose client exists but whose secret was lost gets a new secret; otherwise it is
created. The file (mode 0600) holds the issuer and each portal's client_id, secret and base URL;
``python -m demo.portals`` reads it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from demo import BACKCHANNEL_PATH, CALLBACK_PATH, PORTALS, POST_LOGOUT_PATH, SCOPES, PortalSpec

CONFIG_NAME = "demo-portals.json"


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def portal_registration(spec: PortalSpec, base_url: str) -> dict[str, Any]:
    """Client metadata of one demo portal (as an administrator would register it)."""
    return {
        "name": spec.title,
        "operator": spec.operator,
        "redirect_uris": [base_url + CALLBACK_PATH],
        "post_logout_redirect_uris": [base_url + POST_LOGOUT_PATH, base_url + "/"],
        "scope": SCOPES,
        "auth_method": "client_secret_basic",
        "backchannel_logout_uri": base_url + BACKCHANNEL_PATH,
        "backchannel_logout_session_required": True,
    }


def seed_portals(session: Any, settings: dict[str, Any], path: Path,
                 base_urls: dict[str, str] | None = None) -> dict[str, Any]:
    """Create or reuse the demo clients; write and return the configuration."""
    from sqlalchemy import select

    from oidc.clients import create_client, get_client, rotate_secret
    from oidc.models import Client

    try:
        existing = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        existing = {}
    known = existing.get("portals", {})
    config: dict[str, Any] = {"issuer": settings["issuer"].rstrip("/"), "portals": {}}
    changed = existing.get("issuer") != config["issuer"]
    for name, spec in PORTALS.items():
        base = (base_urls or {}).get(name) or spec.base_url()
        entry = known.get(name) or {}
        client = get_client(entry["client_id"], session=session) if entry.get(
            "client_id") else None
        if client is None:  # the file was lost: find the portal by its name
            client = session.scalar(select(Client).where(Client.client_name == spec.title)
                                    .order_by(Client.id))
            entry = {}
        if client is not None and entry.get("client_secret"):
            config["portals"][name] = entry
            continue
        changed = True
        if client is not None:
            secret = rotate_secret(session, client, actor="cli")
        else:
            client, secret = create_client(session, actor="cli", settings=settings,
                                           **portal_registration(spec, base))
            session.flush()
        config["portals"][name] = {"client_id": client.client_id, "client_secret": secret,
                                   "base_url": base, "title": spec.title}
    session.commit()
    if changed or not path.exists():
        _write_private(path, config)
    return config


@click.command("seed-demo-portals")
@with_appcontext
def seed_demo_portals() -> None:
    """Register the demo portals as clients (idempotent; development only)."""
    from servicekonto.db import db

    settings = current_app.config["SERVICEKONTO"]
    if settings["env"] == "production":
        raise click.ClickException("seed-demo-portals is for development, not production")
    path = Path(settings["instance_path"]) / CONFIG_NAME
    config = seed_portals(db.session, settings, path)
    for name, entry in config["portals"].items():
        click.echo(f"{PORTALS[name].title}: {entry['base_url']}/  (client_id "
                   f"{entry['client_id']})")
    click.echo(f"client credentials in {path}")
