"""Subject identifiers: pairwise per sector (OIDC Core 8.1), public, sector documents."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from oidc.subjects import (
    SectorIdentifierError,
    sector_from,
    sector_of,
    subject_for,
    validate_sector_identifier,
)
from tests.oidc.json_server import JSONServer


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app


@pytest.fixture
def json_server():
    with JSONServer() as server:
        yield server


def portal(redirect_uris, subject_type="pairwise", sector_identifier_uri=None, sector=None):
    return SimpleNamespace(redirect_uris=redirect_uris, subject_type=subject_type,
                           sector_identifier_uri=sector_identifier_uri,
                           sector_identifier=sector)


def test_pairwise_subject_is_stable_per_sector_and_citizen(ctx):
    a1 = portal(["https://bau.musterstadt.de/cb"])
    a2 = portal(["https://bau.musterstadt.de/other"])
    b = portal(["https://kita.musterstadt.de/cb"])
    sub = subject_for(a1, 42)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", sub)
    assert subject_for(a1, 42) == sub == subject_for(a2, 42)  # same sector (host)
    assert subject_for(b, 42) != sub                          # other sector
    assert subject_for(a1, 43) != sub                         # other citizen
    assert subject_for(a1, "42") == sub
    assert sub != "42"  # an opaque value, not the database id


def test_stored_sector_identifier_wins(ctx):
    stored = portal(["https://a.example/cb"], sector="sector.example")
    other = portal(["https://sector.example/cb"])
    assert sector_of(stored) == "sector.example"
    assert subject_for(stored, 7) == subject_for(other, 7)


def test_public_subject_is_the_same_for_every_portal(ctx):
    a = portal(["https://a.example/cb"], subject_type="public")
    b = portal(["https://b.example/cb"], subject_type="public")
    assert subject_for(a, 5) == subject_for(b, 5)
    assert subject_for(a, 5) != subject_for(a, 6)
    assert subject_for(a, 5) != subject_for(portal(["https://a.example/cb"]), 5)


def test_subject_depends_on_the_salt(ctx):
    client = portal(["https://a.example/cb"])
    before = subject_for(client, 1)
    ctx.config["SERVICEKONTO"]["pairwise_salt"] = "another-salt"
    assert subject_for(client, 1) != before


def test_sector_from_redirect_hosts():
    assert sector_from(["https://A.example/cb", "https://a.example/x"]) == "a.example"
    assert sector_from(["https://a.example/cb"], "https://sector.example/s.json") == \
        "sector.example"
    with pytest.raises(SectorIdentifierError, match="several hosts"):
        sector_from(["https://a.example/cb", "https://b.example/cb"])


def test_sector_document_must_list_every_redirect_uri(ctx, json_server):
    redirects = ["http://127.0.0.1:9/a", "http://localhost:9/b"]
    json_server.documents["/sector.json"] = redirects + ["http://127.0.0.1:9/c"]
    assert validate_sector_identifier(json_server.url("/sector.json"), redirects) == "127.0.0.1"

    json_server.documents["/partial.json"] = redirects[:1]
    with pytest.raises(SectorIdentifierError, match="localhost:9/b"):
        validate_sector_identifier(json_server.url("/partial.json"), redirects)


@pytest.mark.parametrize("document,status,message", [
    (b"not json", 200, "not a JSON"),
    ({"redirect_uris": []}, 200, "JSON array"),
    (None, 404, "HTTP 404"),
])
def test_bad_sector_documents(ctx, json_server, document, status, message):
    if document is not None:
        json_server.documents["/doc"] = document
    json_server.status["/doc"] = status
    with pytest.raises(SectorIdentifierError, match=message):
        validate_sector_identifier(json_server.url("/doc"), ["http://127.0.0.1/cb"])


def test_sector_document_needs_https_and_times_out(ctx, json_server):
    json_server.documents["/slow"] = ["http://127.0.0.1/cb"]
    json_server.delay["/slow"] = 2
    with pytest.raises(SectorIdentifierError, match="could not be fetched"):
        validate_sector_identifier(json_server.url("/slow"), ["http://127.0.0.1/cb"],
                                   timeout=0.3)
    with pytest.raises(SectorIdentifierError, match="https"):
        validate_sector_identifier(json_server.url("/slow"), [], allow_loopback_http=False)
    with pytest.raises(SectorIdentifierError, match="https"):
        validate_sector_identifier("http://sector.example/s.json", [])
