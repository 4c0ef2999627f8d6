"""Signing keys: encryption at rest, first start, rotation, retirement, JWKS, caching."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import threading

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

import oidc.keys as keys_module
from oidc.keys import (
    KeyEncryptionError,
    SigningKeyError,
    decrypt_private_key,
    encrypt_private_key,
    ensure_signing_keys,
    init_keys,
    keyring,
    list_keys,
    public_jwks,
    retire,
    rotate,
    signing_key,
)
from oidc.models import SigningKey
from servicekonto import create_app
from servicekonto.audit.models import AuditEvent
from servicekonto.audit.tags import AuditTag
from servicekonto.db import utcnow
from servicekonto.settings import load_settings
from tests.conftest import base_settings

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


def new_kek() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def engine(app):
    return app.extensions["servicekonto.db"].engine


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app


def rows(engine) -> list[SigningKey]:
    with Session(engine) as session:
        return list(session.scalars(select(SigningKey).order_by(SigningKey.id)))


def audit_tags(engine) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(AuditEvent.tag).order_by(AuditEvent.id)))


def at(monkeypatch, when: dt.datetime) -> None:
    """Let the key module see ``when`` as the current time."""
    monkeypatch.setattr(keys_module, "utcnow", lambda: when)


# -- encryption ---------------------------------------------------------------------------

def test_encryption_round_trip_binds_the_kid():
    kek = new_kek()
    sealed = encrypt_private_key(kek, "kid-1", b"secret der bytes")
    assert b"secret der bytes" not in sealed.encode()
    assert decrypt_private_key(kek, "kid-1", sealed) == b"secret der bytes"
    with pytest.raises(KeyEncryptionError):
        decrypt_private_key(kek, "kid-2", sealed)  # moved to another row


def test_wrong_kek_gives_a_clear_error():
    sealed = encrypt_private_key(new_kek(), "kid-1", b"x")
    with pytest.raises(KeyEncryptionError, match="key_encryption_key"):
        decrypt_private_key(new_kek(), "kid-1", sealed)


@pytest.mark.parametrize("bad", ["", "short", "a" * 44, "!!!!"])
def test_malformed_kek_is_refused(bad):
    with pytest.raises(KeyEncryptionError, match="32 random bytes"):
        encrypt_private_key(bad, "kid", b"x")


def test_stored_private_keys_are_encrypted_and_a_wrong_kek_fails(ctx, engine):
    ensure_signing_keys(ctx)
    for row in rows(engine):
        assert row.private_key_encrypted.startswith("v1.")
        assert "PRIVATE" not in row.private_key_encrypted
        assert not PRIVATE_MEMBERS & set(row.public_jwk)
    ctx.config["SERVICEKONTO"]["key_encryption_key"] = new_kek()
    ctx.extensions.pop("oidc.keyring")  # a fresh process with the wrong KEK
    with pytest.raises(KeyEncryptionError, match="cannot decrypt signing key"):
        signing_key("RS256")


# -- first start ---------------------------------------------------------------------------

def test_first_use_creates_one_key_per_configured_alg_and_is_idempotent(ctx, engine):
    created = ensure_signing_keys(ctx)
    assert len(created) == 3
    assert sorted(r.alg for r in rows(engine)) == ["ES256", "PS256", "RS256"]
    assert ensure_signing_keys(ctx) == []
    assert len(rows(engine)) == 3
    assert audit_tags(engine).count(AuditTag.KEY_CREATED) == 3
    rs, ps = signing_key("RS256"), signing_key("PS256")
    assert rs[0] != ps[0]  # one key per algorithm


def test_signing_key_creates_keys_lazily(ctx, engine):
    assert rows(engine) == []
    kid, key = signing_key("ES256")
    assert kid in {r.kid for r in rows(engine)}
    assert key.is_private


def test_concurrent_first_starts_create_each_key_once(app, engine, migrated_database,
                                                      tmp_path, mailbox):
    settings = {**base_settings(migrated_database, tmp_path / "instance", mailbox),
                "key_encryption_key": app.config["SERVICEKONTO"]["key_encryption_key"]}
    apps = [create_app(settings) for _ in range(4)]
    barrier = threading.Barrier(len(apps))
    errors: list[BaseException] = []

    def start(instance):
        try:
            barrier.wait()
            ensure_signing_keys(instance)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(a,)) for a in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for instance in apps:
        instance.extensions["servicekonto.db"].dispose()
    assert errors == []
    assert sorted(r.alg for r in rows(engine)) == ["ES256", "PS256", "RS256"]


def test_init_keys_creates_keys_at_start_and_tolerates_an_empty_database(app, engine, tmp_path,
                                                                         mailbox):
    init_keys(app, eager=True)
    assert len(rows(engine)) == 3
    assert "oidc_keys.jwks" in app.view_functions

    empty = create_app(base_settings(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path / "other",
                                     mailbox))
    init_keys(empty, eager=True)  # not migrated: no error, keys come on first use
    empty.extensions["servicekonto.db"].dispose()


def test_rs256_keys_have_3072_bits_by_default(ctx):
    default_bits = load_settings({"env": "testing"}, environ={})["rsa_key_bits"]
    assert default_bits == 3072
    ctx.config["SERVICEKONTO"]["rsa_key_bits"] = default_bits
    _, key = signing_key("RS256")
    assert key.raw_value.key_size == 3072


def test_production_refuses_smaller_rsa_keys():
    from servicekonto.settings import SettingsError

    with pytest.raises(SettingsError, match="rsa_key_bits"):
        load_settings({"env": "development", "rsa_key_bits": 2048}, environ={})


# -- signing and the JWKS ------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256"])
def test_tokens_signed_with_the_signing_key_verify_with_the_jwks(ctx, alg):
    kid, key = signing_key(alg)
    token = jwt.encode({"alg": alg, "kid": kid}, {"sub": "x"}, key, [alg])
    verified = jwt.decode(token, KeySet.import_key_set(public_jwks()), [alg])
    assert verified.claims == {"sub": "x"}
    assert verified.header["kid"] == kid


def test_jwks_has_public_parts_only_and_unique_kids(ctx):
    rotate("RS256")
    document = public_jwks()
    kids = [k["kid"] for k in document["keys"]]
    assert len(kids) == len(set(kids)) == 4
    for jwk in document["keys"]:
        assert not PRIVATE_MEMBERS & set(jwk)
        assert jwk["use"] == "sig" and jwk["alg"] in {"RS256", "PS256", "ES256"}
        # "<alg>-<thumbprint>": never "-..." (the CLI would take it for an option)
        assert jwk["kid"].startswith(jwk["alg"].lower() + "-")
        assert KeySet.import_key_set({"keys": [jwk]}).keys[0].is_private is False


def test_jwks_endpoint_is_cacheable_json(app):
    init_keys(app)
    client = app.test_client()
    response = client.get("/jwks.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    cache_control = response.headers["Cache-Control"]
    assert "public" in cache_control and "max-age=300" in cache_control
    assert "no-store" not in cache_control
    assert len(response.json["keys"]) == 3
    etag = response.headers["ETag"]
    again = client.get("/jwks.json", headers={"If-None-Match": etag})
    assert again.status_code == 304
    with app.test_request_context():
        from flask import url_for

        assert url_for("oidc_keys.jwks") == "/jwks.json"


# -- rotation and retirement ---------------------------------------------------------------

def test_rotated_key_is_published_before_it_signs(ctx, engine, monkeypatch):
    old_kid, _ = signing_key("RS256")
    new = rotate("RS256")
    lead = ctx.config["SERVICEKONTO"]["signing_key_publish_lead_seconds"]
    assert new.not_before >= utcnow() + dt.timedelta(seconds=lead - 5)
    assert new.kid in {k["kid"] for k in public_jwks()["keys"]}
    assert signing_key("RS256")[0] == old_kid  # not yet

    old = next(r for r in rows(engine) if r.kid == old_kid)
    assert old.retired_at == new.not_before  # scheduled retirement of the replaced key
    at(monkeypatch, new.not_before + dt.timedelta(seconds=1))
    assert signing_key("RS256")[0] == new.kid
    published = {k["kid"] for k in public_jwks()["keys"]}
    assert {old_kid, new.kid} <= published  # the old key's tokens may still be valid
    at(monkeypatch, old.unpublish_at + dt.timedelta(seconds=1))
    assert old_kid not in {k["kid"] for k in public_jwks()["keys"]}
    assert AuditTag.KEY_RETIRED in audit_tags(engine)


def test_emergency_rotation_signs_at_once(ctx):
    old_kid, _ = signing_key("ES256")
    new = rotate("ES256", immediately=True)
    assert signing_key("ES256")[0] == new.kid != old_kid
    assert old_kid in {k["kid"] for k in public_jwks()["keys"]}


def test_retire_stops_signing_but_keeps_publishing_until_unpublish_at(ctx, engine, monkeypatch):
    old_kid, _ = signing_key("PS256")
    with pytest.raises(SigningKeyError, match="only PS256 key"):
        retire(old_kid)
    info = retire(old_kid, force=True)
    settings = ctx.config["SERVICEKONTO"]
    lifetime = max(settings["id_token_lifetime_seconds"], settings["access_token_lifetime_seconds"])
    assert info.unpublish_at - info.retired_at == dt.timedelta(seconds=lifetime)
    new_kid, _ = signing_key("PS256")  # a replacement is created on next use
    assert new_kid != old_kid
    assert {old_kid, new_kid} <= {k["kid"] for k in public_jwks()["keys"]}
    with pytest.raises(SigningKeyError, match="already retired"):
        retire(old_kid)
    at(monkeypatch, info.unpublish_at + dt.timedelta(seconds=1))
    assert old_kid not in {k["kid"] for k in public_jwks()["keys"]}
    assert signing_key("PS256")[0] == new_kid
    assert AuditTag.KEY_RETIRED in audit_tags(engine)


def test_retiring_a_pending_key_keeps_the_current_one_signing(ctx, monkeypatch):
    current_kid, _ = signing_key("ES256")
    pending = rotate("ES256")
    retire(pending.kid)
    at(monkeypatch, pending.not_before + dt.timedelta(seconds=1))
    assert signing_key("ES256")[0] == current_kid


def test_retire_unknown_kid_and_rotate_unknown_alg(ctx):
    with pytest.raises(SigningKeyError, match="no signing key"):
        retire("nope")
    with pytest.raises(SigningKeyError, match="unsupported"):
        rotate("HS256")
    with pytest.raises(SigningKeyError, match="unsupported"):
        rotate("none")


def test_list_keys_reports_states(ctx, monkeypatch):
    signing_key("RS256")
    pending = rotate("RS256")
    states = {i.kid: i.state(utcnow()) for i in list_keys()}
    assert states[pending.kid] == "pending"
    assert sorted(states.values()).count("active") == 3


# -- caching -------------------------------------------------------------------------------

def test_signing_key_and_jwks_do_not_query_the_database_per_call(ctx, engine):
    signing_key("RS256")
    signing_key("ES256")
    public_jwks()
    statements: list[str] = []

    def count(*args):
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(50):
            signing_key("RS256")
            signing_key("ES256")
            public_jwks()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == []


def test_other_instances_see_a_rotation_after_the_recheck_interval(app, ctx, engine, monkeypatch,
                                                                   migrated_database, tmp_path,
                                                                   mailbox):
    first_kid, _ = signing_key("RS256")
    other = create_app({**base_settings(migrated_database, tmp_path / "instance", mailbox),
                        "key_encryption_key": app.config["SERVICEKONTO"]["key_encryption_key"]})
    try:
        with other.app_context():
            new = rotate("RS256", immediately=True)
    finally:
        other.extensions["servicekonto.db"].dispose()
    assert signing_key("RS256")[0] == first_kid  # cached for a few seconds
    monkeypatch.setattr(keys_module, "KEYSET_RECHECK_SECONDS", 0)
    assert signing_key("RS256")[0] == new.kid
    assert keyring(app).private_key(keyring(app).current("RS256")) is signing_key("RS256")[1]


def test_key_rows_count(engine, ctx):
    ensure_signing_keys(ctx)
    with Session(engine) as session:
        assert session.scalar(select(func.count(SigningKey.id))) == 3


def test_other_instances_see_an_early_retirement(app, ctx, monkeypatch, migrated_database,
                                                 tmp_path, mailbox):
    """A change that keeps every count and maximum (an early retire) is still noticed."""
    old_kid, _ = signing_key("ES256")
    pending = rotate("ES256")  # schedules the old key's retirement for later
    other = create_app({**base_settings(migrated_database, tmp_path / "instance", mailbox),
                        "key_encryption_key": app.config["SERVICEKONTO"]["key_encryption_key"]})
    try:
        with other.app_context():
            retire(pending.kid)  # withdrawn: the old key keeps signing
    finally:
        other.extensions["servicekonto.db"].dispose()
    monkeypatch.setattr(keys_module, "KEYSET_RECHECK_SECONDS", 0)
    seen = {i.kid: i for i in keyring(app).infos()}
    assert seen[pending.kid].retired_at is not None
    assert seen[old_kid].retired_at is None
    at(monkeypatch, pending.not_before + dt.timedelta(seconds=1))
    assert signing_key("ES256")[0] == old_kid


def test_unsupported_configured_algorithm_is_a_settings_error(app):
    from servicekonto.settings import SettingsError

    app.config["SERVICEKONTO"]["id_token_signing_algs"] = ["RS256", "HS256"]
    with pytest.raises(SettingsError, match="HS256"):
        init_keys(app)
