"""Subject identifiers: pairwise per sector (stable, different across sectors), public."""

from __future__ import annotations

from tests.oidc.conftest import Provider


def _sub(provider: Provider, portal, browser, email=None) -> str:  # noqa: ANN001
    token, _rp, _ = provider.login_flow(portal, browser, email)
    return provider.id_claims(token["id_token"])["sub"]


def test_pairwise_differs_across_sectors_and_is_stable(provider: Provider) -> None:
    email = provider.citizen()
    browser = provider.browser()
    a = provider.portal("A", redirect_host="127.0.0.1")
    a2 = provider.portal("A2", redirect_host="127.0.0.1")
    b = provider.portal("B", redirect_host="localhost")
    sub_a = _sub(provider, a, browser, email)
    assert _sub(provider, a, browser) == sub_a  # stable
    assert _sub(provider, a2, browser) == sub_a  # same sector (host)
    sub_b = _sub(provider, b, browser)
    assert sub_b != sub_a
    assert str(provider.user_id(email)) not in (sub_a, sub_b)


def test_public_subject_is_the_same_for_every_portal(provider: Provider) -> None:
    email = provider.citizen()
    browser = provider.browser()
    a = provider.portal("A", redirect_host="127.0.0.1", subject_type="public")
    b = provider.portal("B", redirect_host="localhost", subject_type="public")
    sub_a = _sub(provider, a, browser, email)
    assert sub_a == _sub(provider, b, browser)
    pairwise = provider.portal("C", redirect_host="127.0.0.1")
    assert _sub(provider, pairwise, browser) != sub_a
