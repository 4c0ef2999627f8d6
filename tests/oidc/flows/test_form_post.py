"""response_mode=form_post: an auto-submitting form (static script, CSP, a visible button)."""

from __future__ import annotations

from tests.oidc.conftest import Provider, http_get
from tests.support.forms import parse_forms


def test_form_post_delivers_code_state_and_iss(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal()
    browser = provider.browser()
    rp = provider.rp(portal)
    url, state, verifier = provider.authorization_url(rp, response_mode="form_post")
    landing = browser.go(url, email=email)
    assert landing.form_post
    page = landing.response
    csp = page.headers["Content-Security-Policy"]
    assert "form-action http://127.0.0.1:9" in csp and "'unsafe-inline'" not in csp
    form = parse_forms(page.text)[0]
    assert form["method"].lower() == "post" and form["action"] == portal.redirect_uri
    assert form["buttons"] or any(i.get("type") == "submit" for i in form["inputs"])
    assert "<script src=" in page.text and "form_post.js" in page.text
    assert landing.params["state"] == state and landing.params["iss"] == provider.issuer
    script = http_get(provider.base + "/oidc/static/form_post.js")
    assert script.status_code == 200 and "submit()" in script.text
    token = rp.fetch_token(provider.base + "/token", code=landing.params["code"],
                           code_verifier=verifier)
    assert token["id_token"]


def test_form_post_errors(provider: Provider) -> None:
    portal = provider.portal()
    rp = provider.rp(portal)
    url, state, _ = provider.authorization_url(rp, response_mode="form_post", prompt="none")
    landing = provider.browser().go(url)
    assert landing.form_post
    assert landing.params["error"] == "login_required" and landing.params["state"] == state
