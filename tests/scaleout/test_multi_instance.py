"""Two instances on one PostgreSQL database and one Redis behind nginx behave as one service.

Runs in the PostgreSQL pass (``make test-postgres``); needs Redis and nginx
(scripts/install-system-packages.sh).
"""

from __future__ import annotations

import secrets

import pytest
from joserfc import jws

from tests.oidc.conftest import http_get

pytestmark = pytest.mark.postgres


def kids(url: str) -> set[str]:
    return {key["kid"] for key in http_get(url + "/jwks.json").json()["keys"]}


def test_login_on_a_gives_single_sign_on_on_b(cluster):
    a, b = cluster.provider("a"), cluster.provider("b")
    email = a.citizen()
    portal = a.portal("Bürgerportal A")
    other = a.portal("Bürgerportal B")

    browser = a.browser()
    token_a, _rp, _landing = a.login_flow(portal, browser, email)
    sub_a = a.id_claims(token_a["id_token"])["sub"]

    # The same browser (cookie for 127.0.0.1) on instance B: no login page, straight to consent.
    browser.base = b.base
    seen = len(browser.pages)
    token_b, _rp, _landing = b.login_flow(other, browser)  # no e-mail: must not need a login
    assert "/login" not in browser.pages[seen:]
    claims_b = b.id_claims(token_b["id_token"])
    assert claims_b["iss"] == cluster.nginx.url
    assert claims_b["sid"] == a.id_claims(token_a["id_token"])["sid"]  # one session
    assert sub_a  # pairwise per portal, so the subs differ; the session is what is shared

    # And the token A issued works at B's userinfo (and at nginx's).
    for base in (b.base, cluster.nginx.url):
        info = http_get(base + "/userinfo",
                        headers={"Authorization": f"Bearer {token_a['access_token']}"})
        assert info.status_code == 200 and info.json()["sub"] == sub_a


def test_key_rotated_via_one_instance_is_served_and_used_by_the_other(cluster):
    a, b = cluster.provider("a"), cluster.provider("b")
    before = kids(b.base)  # B has read the key set (and created the first keys)
    assert kids(a.base) == before

    result = cluster.instances["a"].cli("keys", "rotate", "--alg", "RS256", "--now", "--json")
    assert result.returncode == 0, result.stderr

    def new_kid() -> set[str]:
        return kids(b.base) - before

    from tests.scaleout.conftest import wait_until

    fresh = wait_until(new_kid, 15, 0.5, "B to publish the rotated key")  # re-check is 5 s
    assert len(fresh) == 1
    (kid,) = fresh

    email = a.citizen()
    portal = a.portal()
    token, _rp, _landing = b.login_flow(portal, b.browser(), email)
    header = jws.extract_compact(token["id_token"].encode()).headers()
    assert header["kid"] == kid, "instance B signs with the key rotated via A"
    assert b.id_claims(token["id_token"])["aud"] == portal.client_id
    assert kid in kids(a.base)


def test_consent_withdrawn_on_one_instance_is_effective_on_the_other_at_once(cluster):
    from oidc.clients import get_client
    from servicekonto.consent.service import withdraw
    from servicekonto.db import db

    a, b = cluster.provider("a"), cluster.provider("b")
    email = a.citizen()
    portal = a.portal()
    browser = a.browser()
    token, _rp, _landing = a.login_flow(portal, browser, email)
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert http_get(b.base + "/userinfo", headers=bearer).status_code == 200

    # The withdrawal runs in one instance's app context (same database and Redis).
    with cluster.app.app_context():
        client = get_client(portal.client_id, session=db.session)
        withdraw(db.session, user_id=a.user_id(email), client=client, notify=False)
        db.session.commit()

    assert http_get(b.base + "/userinfo", headers=bearer).status_code == 401
    # B asks again: prompt=none gets consent_required, without prompt the consent page shows.
    browser.base = b.base
    rp = b.rp(portal)
    url, _state, _verifier = b.authorization_url(rp, nonce=secrets.token_urlsafe(8),
                                                 prompt="none")
    landing = browser.go(url, consent=None)
    assert landing.params.get("error") == "consent_required", landing.params
    url, _state, _verifier = b.authorization_url(rp, nonce=secrets.token_urlsafe(8))
    landing = browser.go(url, consent=None)
    assert landing.url is None and "decision" in landing.response.text


def test_metrics_and_readiness_per_instance(cluster):
    for instance in cluster.instances.values():
        ready = http_get(instance.url + "/readyz")
        assert ready.status_code in (200, 503)
        assert ready.json()["checks"]["redis"]["ok"] is True
        assert ready.json()["checks"]["database"]["ok"] is True
        metrics = http_get(instance.url + "/metrics")  # from loopback: allowed
        assert metrics.status_code == 200
        assert "servicekonto_http_request_duration_seconds" in metrics.text
    # Through nginx the client address is the forwarded one (still loopback here), and the
    # request id is handed through.
    response = http_get(cluster.nginx.url + "/healthz", headers={"X-Request-ID": "probe-42"})
    assert response.headers["X-Request-ID"] == "probe-42"


def test_metrics_aggregate_every_gunicorn_worker(tmp_path, scaleout_database, own_redis,
                                                  mailbox):
    """PROMETHEUS_MULTIPROC_DIR: /metrics counts what every worker served, whichever answers."""
    import re

    from tests.scaleout.conftest import make_cluster

    single = make_cluster(tmp_path, scaleout_database, own_redis.url, mailbox.port,
                          names=("a",), with_nginx=False)
    instance = single.instances["a"]
    try:
        instance.start(workers=2, threads=2)
        metrics_dir = instance.workdir / "a-metrics"
        served = 0
        # New connections until both workers have served some (the kernel spreads accepts).
        while served < 400 and (served < 40 or len(list(metrics_dir.glob("histogram_*.db"))) < 2):
            assert http_get(instance.url + "/healthz").status_code == 200
            served += 1
        assert len(list(metrics_dir.glob("histogram_*.db"))) == 2, "one worker took everything"
        text = http_get(instance.url + "/metrics").text
        counts = re.findall(r'servicekonto_http_request_duration_seconds_count\{'
                            r'endpoint="health.healthz",method="GET",status="200"\} (\S+)', text)
        assert counts and float(counts[0]) >= served, (counts, served)  # both workers summed
    finally:
        instance.stop()
        single.app.extensions["servicekonto.db"].dispose()
