"""Parallel redemption (PostgreSQL): the same code, and the same refresh token, presented by
several requests at once -> exactly one success (conditional UPDATE ... WHERE used_at IS NULL /
rotated_at IS NULL)."""

from __future__ import annotations

import threading

import pytest
import requests

from tests.oidc.conftest import Provider, http_post

PARALLEL = 6


def _race(calls) -> list[requests.Response]:  # noqa: ANN001
    barrier = threading.Barrier(len(calls))
    results: list[requests.Response] = [None] * len(calls)  # type: ignore[list-item]

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@pytest.mark.postgres
def test_same_code_in_parallel_exactly_one_success(provider: Provider) -> None:
    email = provider.citizen()
    portal = provider.portal()
    provider.jwks()  # signing keys exist before the race (first-use creation is not the subject)
    rp = provider.rp(portal)
    url, _state, verifier = provider.authorization_url(rp)
    code = provider.browser().go(url, email=email).params["code"]
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": portal.redirect_uri, "code_verifier": verifier}
    results = _race([lambda: http_post(provider.base + "/token", data=data,
                                           auth=(portal.client_id, portal.secret))
                     for _ in range(PARALLEL)])
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] + [400] * (PARALLEL - 1), [r.text for r in results]
    assert all(r.json()["error"] == "invalid_grant" for r in results if r.status_code == 400)


@pytest.mark.postgres
def test_same_refresh_token_in_parallel_exactly_one_success(provider: Provider) -> None:
    email = provider.citizen()
    scope = "openid offline_access"
    portal = provider.portal(scope=scope)
    token, _rp, _ = provider.login_flow(portal, provider.browser(), email, scope=scope)
    data = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
    results = _race([lambda: http_post(provider.base + "/token", data=data,
                                           auth=(portal.client_id, portal.secret))
                     for _ in range(PARALLEL)])
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] + [400] * (PARALLEL - 1), [r.text for r in results]
