"""Two demo portals that sign citizens in with the Servicekonto (single sign-on showcase).

* "Hundesteuer Musterstadt" on http://127.0.0.1:5001
* "Wohngeld Hessen" on http://127.0.0.1:5002

Each is a small Flask app using Authlib's Flask client with discovery and PKCE (S256), shows
the claims it received, logs out through the provider's ``end_session_endpoint`` and accepts
back-channel logout tokens at ``/backchannel-logout``. Wohngeld also offers a sign-in at the
trust level "substantial" (``/anmelden?niveau=substanziell`` sends ``acr_values``), to try the
step-up with a second factor; the claims page shows the ``acr``/``amr`` received. ``make run``
seeds and starts both next to the provider; see ``demo/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PortalSpec:
    name: str
    title: str
    operator: str
    port: int
    tagline: str
    #: Offers a second sign-in button asking for LoA substantial (``acr_values``): step-up.
    offers_substantial: bool = False

    def base_url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}"


PORTALS: dict[str, PortalSpec] = {
    "hundesteuer": PortalSpec(
        name="hundesteuer", title="Hundesteuer Musterstadt",
        operator="Stadt Musterstadt, Steueramt", port=5001,
        tagline="Hund anmelden, abmelden und Steuerbescheide einsehen."),
    "wohngeld": PortalSpec(
        name="wohngeld", title="Wohngeld Hessen",
        operator="Land Hessen, Wohngeldstelle", port=5002,
        tagline="Wohngeld beantragen und den Stand Ihres Antrags verfolgen.",
        offers_substantial=True),
}

#: The eIDAS level a portal asks for with its "substantial" sign-in button.
LOA_SUBSTANTIAL = "http://eidas.europa.eu/LoA/substantial"
#: Scopes both portals ask for (and are registered for).
SCOPES = "openid profile email address"
#: Paths every portal serves; registered with the provider by ``seed-demo-portals``.
CALLBACK_PATH = "/callback"
POST_LOGOUT_PATH = "/abgemeldet"
BACKCHANNEL_PATH = "/backchannel-logout"
