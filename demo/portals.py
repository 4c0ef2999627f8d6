"""A demo portal: a relying party of the Servicekonto, as a portal operator would build it.

Run one::

    python -m demo.portals --name hundesteuer --port 5001

It reads its client_id/secret from ``instance/demo-portals.json`` (written by
``servicekonto seed-demo-portals``). Everything protocol-related is Authlib's Flask client:
discovery (``server_metadata_url``), authorization code flow with PKCE S256, ID token checks
(signature, iss, aud, nonce), userinfo, RP-initiated logout with ``id_token_hint``. The one
piece written here is the back-channel logout receiver, which checks the logout token the way
the spec asks (section 2.6): signature via the provider's JWKS, ``typ``, iss, aud, iat/exp,
the back-channel event, no ``nonce``, a ``sid`` or ``sub``, and ``jti`` replay.

Portal sessions are kept server-side (in memory, keyed by a random cookie value and indexed by
the provider's ``sid``), so a back-channel logout can end them: the next page load shows the
citizen as logged out.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authlib.integrations.flask_client import OAuth, OAuthError
from flask import (
    Flask,
    Response,
    abort,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from demo import (
    BACKCHANNEL_PATH,
    CALLBACK_PATH,
    LOA_SUBSTANTIAL,
    PORTALS,
    POST_LOGOUT_PATH,
    SCOPES,
    PortalSpec,
)

log = logging.getLogger(__name__)

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
DEFAULT_CONFIG = Path("instance") / "demo-portals.json"
#: How far in the future a logout token's ``iat`` may be (clock skew), and its maximum age.
CLOCK_SKEW_SECONDS = 60
MAX_TOKEN_AGE_SECONDS = 600

LEVEL_NAMES = {
    "http://eidas.europa.eu/LoA/low": "niedrig (Basisregistrierung: E-Mail und Passwort)",
    LOA_SUBSTANTIAL: "substanziell (Passwort und zweiter Faktor)",
    "http://eidas.europa.eu/LoA/high": "hoch",
}
CLAIM_LABELS = {
    "sub": "Pseudonym (sub)",
    "given_name": "Vorname",
    "family_name": "Nachname",
    "name": "Name",
    "birthdate": "Geburtsdatum",
    "email": "E-Mail-Adresse",
    "email_verified": "E-Mail bestätigt",
    "address": "Anschrift",
    "acr": "Vertrauensniveau (acr)",
    "amr": "Anmeldeverfahren (amr)",
    "auth_time": "Anmeldezeitpunkt",
    "sid": "Sitzung beim Servicekonto (sid)",
    "iss": "Aussteller (iss)",
    "aud": "Empfänger (aud)",
    "iat": "Ausgestellt (iat)",
    "exp": "Gültig bis (exp)",
    "nonce": "Nonce",
    "at_hash": "at_hash",
}


# -- server-side portal sessions --------------------------------------------------------------

@dataclass
class PortalSession:
    id: str
    sid: str | None
    sub: str
    id_token: str
    id_claims: dict[str, Any]
    userinfo: dict[str, Any]
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    created: float = field(default_factory=time.time)


class SessionStore:
    """In-memory sessions of one portal process, findable by the provider's ``sid``/``sub``."""

    def __init__(self) -> None:
        self._sessions: dict[str, PortalSession] = {}
        self._lock = threading.Lock()

    def create(self, **data: Any) -> PortalSession:
        record = PortalSession(id=secrets.token_urlsafe(32), **data)
        with self._lock:
            self._sessions[record.id] = record
        return record

    def get(self, session_id: str | None) -> PortalSession | None:
        if not session_id:
            return None
        with self._lock:
            return self._sessions.get(session_id)

    def delete(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def end_for(self, *, sid: str | None, sub: str | None) -> int:
        """End the sessions of a provider session (``sid``), or of a citizen (``sub`` only)."""
        with self._lock:
            doomed = [k for k, s in self._sessions.items()
                      if (sid and s.sid == sid) or (not sid and sub and s.sub == sub)]
            for key in doomed:
                del self._sessions[key]
        return len(doomed)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)


class _SeenJti:
    """``jti`` values of logout tokens already accepted (replay), forgotten after a while."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_time(self, jti: str) -> bool:
        now = time.time()
        with self._lock:
            self._seen = {k: v for k, v in self._seen.items() if v > now}
            if jti in self._seen:
                return False
            self._seen[jti] = now + MAX_TOKEN_AGE_SECONDS + CLOCK_SKEW_SECONDS
            return True


# -- the app ----------------------------------------------------------------------------------

class LogoutTokenError(Exception):
    pass


def create_portal_app(spec: PortalSpec | str, *, issuer: str, client_id: str | None = None,
                      client_secret: str | None = None, base_url: str | None = None,
                      secret_key: str | None = None) -> Flask:
    """Build one portal. ``client_id``/``client_secret`` may be set later in ``app.config``
    (``PORTAL_CLIENT_ID``/``PORTAL_CLIENT_SECRET``) before the first request, e.g. when the
    port is only known once the server is bound. ``base_url`` defaults to the request's host.
    """
    if isinstance(spec, str):
        spec = PORTALS[spec]
    app = Flask(f"demo_{spec.name}", root_path=str(Path(__file__).parent),
                template_folder="templates")
    app.config.update(
        SECRET_KEY=secret_key or secrets.token_urlsafe(32),
        # Browsers share cookies between ports of one host: every portal needs its own names.
        SESSION_COOKIE_NAME=f"{spec.name}_oauth",
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        PORTAL_SPEC=spec,
        PORTAL_ISSUER=issuer.rstrip("/"),
        PORTAL_CLIENT_ID=client_id,
        PORTAL_CLIENT_SECRET=client_secret,
        PORTAL_BASE_URL=base_url.rstrip("/") if base_url else None,
        PORTAL_COOKIE=f"{spec.name}_sitzung",
    )
    store = SessionStore()
    seen = _SeenJti()
    oauth = OAuth(app)
    app.extensions["demo_portal.sessions"] = store

    def servicekonto() -> Any:
        client = oauth.create_client("servicekonto")
        if client is None:
            oauth.register(
                "servicekonto",
                client_id=app.config["PORTAL_CLIENT_ID"],
                client_secret=app.config["PORTAL_CLIENT_SECRET"],
                server_metadata_url=(
                    f"{app.config['PORTAL_ISSUER']}/.well-known/openid-configuration"),
                client_kwargs={"scope": SCOPES, "code_challenge_method": "S256",
                               "token_endpoint_auth_method": "client_secret_basic",
                               "default_timeout": 10},
            )
            client = oauth.create_client("servicekonto")
        return client

    def absolute(path: str) -> str:
        base = app.config["PORTAL_BASE_URL"] or request.host_url.rstrip("/")
        return base + path

    @app.before_request
    def _load_portal_session() -> None:
        g.portal_session = store.get(request.cookies.get(app.config["PORTAL_COOKIE"]))

    @app.context_processor
    def _context() -> dict[str, Any]:
        return {"spec": spec, "portal_session": g.get("portal_session"),
                "others": [p for p in PORTALS.values() if p.name != spec.name],
                "labels": CLAIM_LABELS, "level_names": LEVEL_NAMES}

    @app.after_request
    def _no_store(response: Response) -> Response:
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    @app.get("/")
    def index() -> str:
        return render_template("portal_index.html")

    @app.get("/anmelden")
    def login() -> Any:
        if not app.config["PORTAL_CLIENT_ID"]:
            return render_template("portal_error.html", message=(
                "Dieses Portal ist noch nicht beim Servicekonto registriert. Bitte führen Sie "
                "„servicekonto seed-demo-portals“ aus.")), 503
        extra = {}
        if spec.offers_substantial and request.args.get("niveau") == "substanziell":
            extra["acr_values"] = LOA_SUBSTANTIAL  # voluntary: the ID token's acr tells
        try:
            return servicekonto().authorize_redirect(absolute(CALLBACK_PATH), **extra)
        except Exception:  # noqa: BLE001 - e.g. the provider is not running
            log.exception("could not start the login")
            return render_template("portal_error.html", message=(
                "Das Servicekonto ist gerade nicht erreichbar. Bitte versuchen Sie es später "
                "erneut.")), 503

    @app.get(CALLBACK_PATH)
    def callback() -> Any:
        if request.args.get("error"):
            error = request.args["error"]
            message = ("Sie haben die Weitergabe Ihrer Daten abgelehnt. Ohne Anmeldung können "
                       "Sie dieses Portal nicht nutzen." if error == "access_denied" else
                       f"Die Anmeldung ist fehlgeschlagen ({error}).")
            return render_template("portal_error.html", message=message), 400
        try:
            token = servicekonto().authorize_access_token()
            userinfo = dict(servicekonto().userinfo(token=token))
        except OAuthError as exc:
            log.warning("login failed: %s", exc)
            return render_template("portal_error.html", message=(
                f"Die Anmeldung ist fehlgeschlagen ({exc.error}).")), 400
        claims = dict(token["userinfo"])
        if userinfo.get("sub") != claims.get("sub"):
            return render_template("portal_error.html", message=(
                "Die Antwort des Servicekontos ist widersprüchlich (sub).")), 400
        old = g.get("portal_session")
        if old is not None:
            store.delete(old.id)
        record = store.create(sid=claims.get("sid"), sub=claims["sub"],
                              id_token=token["id_token"], id_claims=claims, userinfo=userinfo)
        response = redirect(url_for("claims"))
        response.set_cookie(app.config["PORTAL_COOKIE"], record.id, httponly=True,
                            samesite="Lax", secure=request.scheme == "https")
        return response

    @app.get("/meine-daten")
    def claims() -> Any:
        if g.portal_session is None:
            return redirect(url_for("index"))
        return render_template("portal_claims.html", session_data=g.portal_session)

    @app.post("/abmelden")
    def logout() -> Any:
        record = g.portal_session
        if record is None:
            return redirect(url_for("index"))
        if not secrets.compare_digest(request.form.get("csrf", ""), record.csrf):
            abort(400)
        store.delete(record.id)
        response = servicekonto().logout_redirect(
            post_logout_redirect_uri=absolute(POST_LOGOUT_PATH), id_token_hint=record.id_token,
            ui_locales="de")
        response.delete_cookie(app.config["PORTAL_COOKIE"])
        return response

    @app.get(POST_LOGOUT_PATH)
    def logged_out() -> Any:
        try:
            servicekonto().validate_logout_response()
            confirmed = True
        except OAuthError:
            confirmed = False  # e.g. reloaded page; the local session is gone either way
        return render_template("portal_logged_out.html", confirmed=confirmed)

    @app.post(BACKCHANNEL_PATH)
    def backchannel_logout() -> Any:
        try:
            claims = validate_logout_token(servicekonto(), request.form.get("logout_token"),
                                           app.config["PORTAL_CLIENT_ID"], seen)
        except LogoutTokenError as exc:
            log.warning("back-channel logout refused: %s", exc)
            response = jsonify(error="invalid_request", error_description=str(exc))
            response.status_code = 400
            return response
        ended = store.end_for(sid=claims.get("sid"), sub=claims.get("sub"))
        log.info("back-channel logout: ended %s session(s)", ended)
        return Response("", status=200, headers={"Cache-Control": "no-store"})

    app.add_url_rule("/health", "health", lambda: {"portal": spec.name,
                                                   "sessions": len(store)})
    return app


def validate_logout_token(client: Any, logout_token: str | None, client_id: str,
                          seen: _SeenJti | None = None) -> dict[str, Any]:
    """Check a logout token as OIDC Back-Channel Logout 1.0 section 2.6 says; return claims."""
    from joserfc import jwt
    from joserfc.errors import InvalidKeyIdError, JoseError
    from joserfc.jwk import KeySet
    from joserfc.jws import JWSRegistry

    if not logout_token:
        raise LogoutTokenError("logout_token is missing")
    metadata = client.load_server_metadata()
    algorithms = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    registry = JWSRegistry(algorithms=[a for a in algorithms if a != "none"],
                           strict_check_header=False)
    try:
        try:
            token = jwt.decode(logout_token, KeySet.import_key_set(client.fetch_jwk_set()),
                               registry=registry)
        except InvalidKeyIdError:  # a new key: refetch the JWKS once
            token = jwt.decode(logout_token,
                               KeySet.import_key_set(client.fetch_jwk_set(force=True)),
                               registry=registry)
    except (JoseError, ValueError) as exc:
        raise LogoutTokenError(f"signature or format invalid: {exc}") from None
    header, claims = token.header, dict(token.claims)
    if header.get("typ") not in (None, "logout+jwt", "application/logout+jwt"):
        raise LogoutTokenError("wrong typ")
    if claims.get("iss") != metadata.get("issuer"):
        raise LogoutTokenError("wrong issuer")
    audience = claims.get("aud")
    audience = [audience] if isinstance(audience, str) else list(audience or [])
    if client_id not in audience:
        raise LogoutTokenError("not for this portal (aud)")
    now = time.time()
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or iat > now + CLOCK_SKEW_SECONDS or (
            iat < now - MAX_TOKEN_AGE_SECONDS):
        raise LogoutTokenError("iat missing or out of range")
    exp = claims.get("exp")
    if exp is not None and (not isinstance(exp, int | float) or exp < now - CLOCK_SKEW_SECONDS):
        raise LogoutTokenError("expired")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):
        raise LogoutTokenError("back-channel logout event missing")
    if "nonce" in claims:
        raise LogoutTokenError("a logout token must not contain a nonce")
    if not claims.get("sid") and not claims.get("sub"):
        raise LogoutTokenError("neither sid nor sub")
    jti = claims.get("jti")
    if not jti:
        raise LogoutTokenError("jti missing")
    if seen is not None and not seen.first_time(str(jti)):
        raise LogoutTokenError("replayed logout token")
    return claims


# -- running one portal -----------------------------------------------------------------------

def load_config(path: Path = DEFAULT_CONFIG) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"{path} not found: run 'servicekonto seed-demo-portals' first") from None


def app_from_config(name: str, path: Path = DEFAULT_CONFIG, port: int | None = None) -> Flask:
    config = load_config(path)
    entry = config["portals"][name]
    spec = PORTALS[name]
    base = entry.get("base_url") or spec.base_url()
    if port is not None and port != spec.port:
        base = f"http://127.0.0.1:{port}"
    return create_portal_app(spec, issuer=config["issuer"], client_id=entry["client_id"],
                             client_secret=entry["client_secret"], base_url=base)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a Servicekonto demo portal.")
    parser.add_argument("--name", required=True, choices=sorted(PORTALS))
    parser.add_argument("--port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"[{args.name}] %(levelname)s %(message)s")
    port = args.port or PORTALS[args.name].port
    app = app_from_config(args.name, args.config, port)
    current = app.config["PORTAL_SPEC"]
    print(f"{current.title} on http://{args.host}:{port}/  (Ctrl+C stops)", flush=True)
    from werkzeug.serving import run_simple

    run_simple(args.host, port, app, use_reloader=False, threaded=True)


if __name__ == "__main__":
    main()
