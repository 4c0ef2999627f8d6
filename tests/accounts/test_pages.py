"""Every account page: one h1, a visible label for every input, no inline script or style."""

from __future__ import annotations

import re

import pytest

from tests.accounts.conftest import login, make_user, text

ANONYMOUS = ["/login", "/login?reauth=1", "/register", "/password/forgot", "/logout",
             "/verify/forged", "/password/reset/forged", "/account/email/confirm/forged"]
LOGGED_IN = ["/account", "/account/password", "/account/email", "/logout"]


def check_page(html: str) -> None:
    assert len(re.findall(r"<h1\b", html)) == 1
    assert "<script" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)
    labels = set(re.findall(r'<label[^>]*\bfor="([^"]+)"', html))
    for tag in re.findall(r"<input\b[^>]*>", html):
        if 'type="hidden"' in tag:
            continue
        field_id = re.search(r'\bid="([^"]+)"', tag)
        assert field_id and field_id.group(1) in labels, tag
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "duplicate ids"


@pytest.mark.parametrize("url", ANONYMOUS)
def test_anonymous_pages_are_accessible(client, url):
    response = client.get(url)
    assert response.status_code in (200, 400)
    check_page(text(response))


@pytest.mark.parametrize("lang", ["de", "en"])
def test_account_pages_are_accessible(app, client, lang):
    user = make_user(app, verified=False)
    login(client, user.email)
    for url in LOGGED_IN:
        response = client.get(f"{url}?lang={lang}")
        assert response.status_code == 200, url
        check_page(text(response))


def test_form_with_errors_stays_accessible(client):
    from tests.support.forms import submit

    response = submit(client, "/register", {"email": "nope", "password": "kurz"})
    html = text(response)
    check_page(html)
    assert 'role="alert"' in html
    assert 'aria-describedby="password-hint password-error"' in html
