"""Flow-test helpers: citizens and portals created through the real services, a browser
(``requests.Session``) that logs in through the real forms, and a relying party built on
Authlib's OAuth2 client, all against the live server."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import TEST_SECRET
from tests.support.forms import parse_forms
from tests.support.live_server import LiveServer

PASSWORD = "Sonnenblume-Wiesbaden-42"
TIMEOUT = 30
CLI = str(Path(sys.executable).parent / "servicekonto")


def http_get(url: str, **kwargs: Any) -> requests.Response:
    """A plain HTTP GET (no cookies kept), with a timeout."""
    return requests.get(url, timeout=kwargs.pop("timeout", TIMEOUT), **kwargs)


def http_post(url: str, **kwargs: Any) -> requests.Response:
    return requests.post(url, timeout=kwargs.pop("timeout", TIMEOUT), **kwargs)


@dataclass
class Portal:
    client_id: str
    secret: str | None
    redirect_uri: str
    scope: str
    auth_method: str


@dataclass
class Landing:
    """Where the browser ended: a redirect to the portal (``params``) or a page."""

    response: requests.Response
    url: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    form_post: bool = False


class Browser:
    """A citizen's browser: follows redirects on the provider, fills login and consent forms,
    stops at the first redirect (or form_post page) addressed to a portal."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.pages: list[str] = []

    def login(self, email: str, password: str = PASSWORD) -> requests.Response:
        page = self.http.get(self.base + "/login")
        return self._submit_login(page, email, password)

    def _submit_login(self, page: requests.Response, email: str,
                      password: str) -> requests.Response:
        form = parse_forms(page.text)[0]
        fields = {**form["fields"], "email": email, "password": password}
        return self.http.post(urljoin(page.url, form["action"] or page.url), data=fields,
                              allow_redirects=False)

    def go(self, url: str, *, email: str | None = None, password: str = PASSWORD,
           consent: str | None = "allow", method: str = "GET",
           data: dict[str, str] | None = None) -> Landing:
        if method == "POST":
            response = self.http.post(url, data=data, allow_redirects=False)
        else:
            response = self.http.get(url, allow_redirects=False)
        for _ in range(15):
            if response.is_redirect:
                target = urljoin(response.url, response.headers["Location"])
                if not target.startswith(self.base):
                    query = parse_qs(urlsplit(target).query)
                    return Landing(response, target, {k: v[0] for k, v in query.items()})
                response = self.http.get(target, allow_redirects=False)
                continue
            self.pages.append(urlsplit(response.url).path)
            forms = parse_forms(response.text) if "html" in response.headers.get(
                "Content-Type", "") else []
            path = urlsplit(response.url).path
            if response.status_code == 200 and path == "/login" and email:
                response = self._submit_login(response, email, password)
                email = None  # log in at most once per flow
                continue
            if forms and forms[0]["action"].endswith("/authorize/consent") and consent:
                form = forms[0]
                fields = {**form["fields"], "decision": consent}
                response = self.http.post(urljoin(response.url, form["action"]), data=fields,
                                          allow_redirects=False)
                consent = None
                continue
            if forms and forms[0].get("action") and forms[0]["action"].startswith("http") \
                    and not forms[0]["action"].startswith(self.base):
                return Landing(response, forms[0]["action"], forms[0]["fields"],
                               form_post=True)
            return Landing(response)
        raise AssertionError("too many redirects")


@dataclass
class Provider:
    app: Flask
    server: LiveServer

    @property
    def base(self) -> str:
        return self.server.url

    @property
    def issuer(self) -> str:
        return self.app.config["SERVICEKONTO"]["issuer"]

    def citizen(self, email: str | None = None, *, verified: bool = True,
                **profile: Any) -> str:
        from servicekonto.accounts.models import User
        from servicekonto.accounts.services import create_user
        from servicekonto.db import db

        email = email or f"erika.{secrets.token_hex(3)}@example.org"
        with self.app.app_context():
            user = create_user(db.session, email=email, password=PASSWORD, given_name="Erika",
                               family_name="Mustermann", verified=verified)
            values = {"birthdate": dt.date(1964, 8, 12), "street_address": "Heidestraße 17",
                      "postal_code": "51147", "locality": "Köln", "country": "DE",
                      "phone_number": "+49 611 1234567", **profile}
            for key, value in values.items():
                setattr(user, key, value)
            db.session.commit()
            assert isinstance(user, User)
        return email

    def user_id(self, email: str) -> int:
        from servicekonto.accounts.services import find_by_email
        from servicekonto.db import db

        with self.app.app_context():
            return find_by_email(db.session, email).id

    def portal(self, name: str = "Bürgerportal", *, scope: str = "openid profile email",
               auth_method: str = "client_secret_basic", redirect_host: str = "127.0.0.1",
               grant_types: list[str] | None = None, **kwargs: Any) -> Portal:
        from oidc.clients import create_client
        from servicekonto.db import db

        grant_types = grant_types or ["authorization_code", "refresh_token"]
        redirect_uri = kwargs.pop("redirect_uri", None) or \
            f"http://{redirect_host}:9/cb/{secrets.token_hex(4)}"
        uris = [redirect_uri] if "authorization_code" in grant_types else []
        with self.app.app_context():
            client, secret = create_client(
                db.session, name=name, redirect_uris=uris, scope=scope,
                auth_method=auth_method,
                grant_types=grant_types, **kwargs)
            db.session.commit()
            client_id = client.client_id
        return Portal(client_id, secret, redirect_uri, scope, auth_method)

    def browser(self) -> Browser:
        return Browser(self.base)

    def rp(self, portal: Portal, scope: str | None = None, **kwargs: Any) -> OAuth2Session:
        return OAuth2Session(
            portal.client_id, portal.secret, scope=scope or portal.scope,
            redirect_uri=portal.redirect_uri, code_challenge_method="S256",
            token_endpoint_auth_method=portal.auth_method, **kwargs)

    def authorization_url(self, rp: OAuth2Session, **params: Any) -> tuple[str, str, str]:
        """(url, state, code_verifier)."""
        verifier = secrets.token_urlsafe(48)
        url, state = rp.create_authorization_url(self.base + "/authorize",
                                                 code_verifier=verifier, **params)
        return url, state, verifier

    def login_flow(self, portal: Portal, browser: Browser, email: str | None = None, *,
                   scope: str | None = None, nonce: str | None = None,
                   **params: Any) -> tuple[dict[str, Any], OAuth2Session, Landing]:
        """Code flow to the token response (asserts success)."""
        rp = self.rp(portal, scope=scope)
        nonce = nonce or secrets.token_urlsafe(12)
        url, state, verifier = self.authorization_url(rp, nonce=nonce, **params)
        landing = browser.go(url, email=email)
        assert landing.url and landing.url.startswith(portal.redirect_uri), landing.response.text
        assert "code" in landing.params, landing.params
        assert landing.params["state"] == state
        assert landing.params["iss"] == self.issuer
        token = rp.fetch_token(self.base + "/token", code=landing.params["code"],
                               code_verifier=verifier)
        token["_nonce"] = nonce
        return token, rp, landing

    def jwks(self) -> KeySet:
        return KeySet.import_key_set(http_get(self.base + "/jwks.json").json())

    def id_claims(self, id_token: str) -> dict[str, Any]:
        return jwt.decode(id_token, self.jwks(), algorithms=["RS256", "PS256", "ES256",
                                                              "EdDSA"]).claims

    def audit(self, tag: str) -> list[dict[str, Any]]:
        import json

        from sqlalchemy import select

        from servicekonto.audit.models import AuditEvent
        from servicekonto.db import db

        with self.app.app_context():
            rows = db.session.scalars(select(AuditEvent).where(AuditEvent.tag == tag)
                                      .order_by(AuditEvent.id)).all()
            return [{"client_id": r.client_id, "user": r.subject_user_id,
                     "details": json.loads(r.details)} for r in rows]


@pytest.fixture
def provider(app: Flask, live_server: LiveServer) -> Iterator[Provider]:
    yield Provider(app, live_server)


# -- the real console script, against the test app's database ------------------------------

@pytest.fixture
def cli(app: Flask, tmp_path: Path):  # noqa: ANN201
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICEKONTO_")}
    env.update({
        "SERVICEKONTO_ENV": "testing",
        "SERVICEKONTO_DATABASE_URL": app.config["SERVICEKONTO"]["database_url"],
        "SERVICEKONTO_INSTANCE_PATH": app.config["SERVICEKONTO"]["instance_path"],
        "SERVICEKONTO_SECRET_KEY": TEST_SECRET,
        "SERVICEKONTO_KEY_ENCRYPTION_KEY": app.config["SERVICEKONTO"]["key_encryption_key"],
        "SERVICEKONTO_PAIRWISE_SALT": app.config["SERVICEKONTO"]["pairwise_salt"],
        "SERVICEKONTO_ALLOW_LOOPBACK_HTTP": "true",
        "SERVICEKONTO_RSA_KEY_BITS": "2048",
        "SERVICEKONTO_LOG_LEVEL": "WARNING",
        "SERVICEKONTO_ISSUER": "http://localhost",
        # mails the commands send go to the test's SMTP mailbox
        "SERVICEKONTO_MAIL_SMTP_HOST": str(app.config["SERVICEKONTO"]["mail_smtp_host"]),
        "SERVICEKONTO_MAIL_SMTP_PORT": str(app.config["SERVICEKONTO"]["mail_smtp_port"]),
    })

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, *args], env=env, capture_output=True, text=True,
                              input=input, timeout=120, cwd=tmp_path)

    return run
