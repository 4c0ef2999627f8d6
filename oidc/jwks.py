"""``GET /jwks.json``: the provider's public signing keys (the ``jwks_uri`` of the discovery
document). Public parts only, unique kids, cacheable for a short time with an ETag, so relying
parties that follow HTTP caching fetch it rarely and a rotated key (published a day before it
signs) reaches them long before it is used.
"""

from __future__ import annotations

import hashlib
import json

from flask import Blueprint, Response, request

from oidc.keys import public_jwks

#: Short enough that a newly published key spreads fast, long enough to spare the service.
JWKS_MAX_AGE_SECONDS = 300

bp = Blueprint("oidc_keys", __name__)


@bp.get("/jwks.json")
def jwks() -> Response:
    body = json.dumps(public_jwks(), sort_keys=True, separators=(",", ":"))
    etag = hashlib.sha256(body.encode()).hexdigest()[:32]
    response = Response(body, mimetype="application/json")
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE_SECONDS}"
    response.headers["Access-Control-Allow-Origin"] = "*"  # browser-based relying parties
    return response.make_conditional(request)
