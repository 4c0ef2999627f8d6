"""Both demo portals in-process on live servers, registered with the live provider."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from flask import Flask

from demo import PORTALS
from demo.portals import create_portal_app
from tests.support.forms import parse_forms
from tests.support.live_server import LiveServer

PASSWORD = "Sonnenblume-Wiesbaden-42"


@dataclass
class RunningPortal:
    name: str
    app: Flask
    server: LiveServer
    client_id: str = ""

    @property
    def url(self) -> str:
        return self.server.url


class DemoBrowser:
    """A citizen's browser across the portals and the provider: follows redirects and fills the
    provider's login and consent forms when they appear; records the provider pages seen."""

    def __init__(self, provider_url: str) -> None:
        self.provider_url = provider_url
        self.http = requests.Session()
        self.provider_pages: list[str] = []

    def open(self, url: str, *, email: str | None = None, consent: str | None = "allow",
             method: str = "GET", data: dict[str, str] | None = None) -> requests.Response:
        response = self.http.request(method, url, data=data, allow_redirects=False, timeout=15)
        for _ in range(20):
            if response.is_redirect:
                response = self.http.get(urljoin(response.url, response.headers["Location"]),
                                         allow_redirects=False, timeout=15)
                continue
            if not response.url.startswith(self.provider_url):
                return response
            path = urlsplit(response.url).path
            self.provider_pages.append(path)
            forms = parse_forms(response.text) if "html" in response.headers.get(
                "Content-Type", "") else []
            if path == "/login" and email and forms:
                fields = {**forms[0]["fields"], "email": email, "password": PASSWORD}
                action = forms[0]["action"] or response.url
                response = self.http.post(urljoin(response.url, action),
                                          data=fields, allow_redirects=False, timeout=15)
                email = None
                continue
            if consent and forms and forms[0]["action"].endswith("/authorize/consent"):
                fields = {**forms[0]["fields"], "decision": consent}
                response = self.http.post(urljoin(response.url, forms[0]["action"]),
                                          data=fields, allow_redirects=False, timeout=15)
                consent = None
                continue
            return response
        raise AssertionError("too many redirects")

    def form(self, url: str, index: int = 0) -> tuple[str, dict[str, str]]:
        page = self.http.get(url, timeout=15)
        form = [f for f in parse_forms(page.text) if f["method"].lower() == "post"][index]
        return urljoin(page.url, form["action"]), form["fields"]


@pytest.fixture
def citizen(app: Flask) -> str:
    import datetime as dt

    from servicekonto.accounts.services import create_user
    from servicekonto.db import db

    email = "erika.mustermann@example.org"
    with app.app_context():
        user = create_user(db.session, email=email, password=PASSWORD, given_name="Erika",
                           family_name="Mustermann", verified=True)
        user.birthdate = dt.date(1964, 8, 12)
        user.street_address = "Heidestraße 17"
        user.postal_code = "51147"
        user.locality = "Musterstadt"
        user.country = "DE"
        db.session.commit()
    return email


@pytest.fixture
def portals(app: Flask, live_server: LiveServer, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Both demo portals, seeded through ``demo.seed`` with their live URLs."""
    from demo.seed import seed_portals
    from servicekonto.db import db

    running = {}
    for name in PORTALS:
        portal_app = create_portal_app(name, issuer=live_server.url)
        running[name] = RunningPortal(name, portal_app, LiveServer(portal_app))
    with app.app_context():
        config = seed_portals(db.session, app.config["SERVICEKONTO"],
                              tmp_path / "demo-portals.json",
                              base_urls={n: p.url for n, p in running.items()})
    for name, portal in running.items():
        entry = config["portals"][name]
        portal.app.config.update(PORTAL_CLIENT_ID=entry["client_id"],
                                 PORTAL_CLIENT_SECRET=entry["client_secret"],
                                 PORTAL_BASE_URL=portal.url)
        portal.client_id = entry["client_id"]
        portal.server.start()
    yield running
    for portal in running.values():
        portal.server.stop()


@pytest.fixture
def browser(live_server: LiveServer) -> DemoBrowser:
    return DemoBrowser(live_server.url)
