"""Settings: defaults < SERVICEKONTO_CONFIG file < SERVICEKONTO_* environment < overrides."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from servicekonto import create_app
from servicekonto.settings import (
    DEFAULTS_FILE,
    SettingsError,
    ensure_secret_key,
    load_settings,
)

PRODUCTION_OK = {
    "env": "production",
    "secret_key": "p" * 40,
    "issuer": "https://konto.example.org",
    "session_cookie_secure": True,
    "mail_smtp_host": "mail.example.org",
    "debug": False,
    "key_encryption_key": "a2V5LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGVzLWxvbmc=",
    "pairwise_salt": "s" * 40,
    "allow_loopback_http": False,
}


DEV = {"SERVICEKONTO_ENV": "development"}


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "servicekonto.toml"
    path.write_text(text)
    return path


def test_defaults_file_is_the_base():
    defaults = tomllib.loads(DEFAULTS_FILE.read_text())
    settings = load_settings(environ=DEV)
    for key, value in defaults.items():
        if key in {"env", "instance_path", "database_url", "mail_outbox_dir"}:
            continue  # derived from the instance folder
        assert settings[key] == value, key


def test_derived_values_follow_the_instance_path(tmp_path):
    settings = load_settings({"instance_path": str(tmp_path), "issuer": "https://a.example/"},
                             environ=DEV)
    assert settings["database_url"] == f"sqlite:///{tmp_path / 'servicekonto.db'}"
    assert settings["mail_outbox_dir"] == str(tmp_path / "mail")
    assert settings["issuer"] == "https://a.example"  # no trailing slash


def test_precedence_defaults_file_env_overrides(tmp_path):
    config = write_config(tmp_path, 'log_level = "DEBUG"\nsession_idle_minutes = 30\n'
                                    'locales = ["en", "de"]\nredis_url = "redis://file"\n')
    environ = {**DEV, "SERVICEKONTO_CONFIG": str(config),
               "SERVICEKONTO_SESSION_IDLE_MINUTES": "20",
               "SERVICEKONTO_REDIS_URL": "redis://env"}
    settings = load_settings({"redis_url": "redis://override"}, environ=environ)
    assert settings["log_level"] == "DEBUG"  # file beats the default
    assert settings["locales"] == ["en", "de"]
    assert settings["session_idle_minutes"] == 20  # env beats the file
    assert settings["redis_url"] == "redis://override"  # overrides beat everything
    assert settings["session_absolute_hours"] == 12  # untouched default


def test_relative_config_path_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    write_config(tmp_path, 'log_level = "ERROR"\n')
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={**DEV, "SERVICEKONTO_CONFIG": "servicekonto.toml"})
    assert settings["log_level"] == "ERROR"


def test_real_process_environment_is_read(monkeypatch):
    monkeypatch.setenv("SERVICEKONTO_ENV", "development")
    monkeypatch.setenv("SERVICEKONTO_LOG_LEVEL", "WARNING")
    assert load_settings()["log_level"] == "WARNING"


def test_environment_values_are_coerced():
    settings = load_settings(environ={
        "SERVICEKONTO_DEBUG": "yes",
        "SERVICEKONTO_SESSION_COOKIE_SECURE": "0",
        "SERVICEKONTO_TRUSTED_PROXIES": "2",
        "SERVICEKONTO_LOCALES": "en, de",
        "SERVICEKONTO_ENV": "development",
    })
    assert settings["debug"] is True
    assert settings["session_cookie_secure"] is False
    assert settings["trusted_proxies"] == 2
    assert settings["locales"] == ["en", "de"]


@pytest.mark.parametrize("where", ["file", "env", "overrides"])
def test_unknown_keys_are_rejected_everywhere(tmp_path, where):
    environ: dict[str, str] = {}
    overrides = None
    if where == "file":
        environ["SERVICEKONTO_CONFIG"] = str(write_config(tmp_path, 'sesion_idle_minutes = 5\n'))
    elif where == "env":
        environ["SERVICEKONTO_SESION_IDLE_MINUTES"] = "5"
    else:
        overrides = {"sesion_idle_minutes": 5}
    with pytest.raises(SettingsError, match="unknown setting 'sesion_idle_minutes'"):
        load_settings(overrides, environ=environ)


@pytest.mark.parametrize(("key", "value", "kind"), [
    ("SERVICEKONTO_TRUSTED_PROXIES", "two", "integer"),
    ("SERVICEKONTO_DEBUG", "maybe", "boolean"),
    ("SERVICEKONTO_DATABASE_POOL_SIZE", "", "integer"),
])
def test_environment_type_errors(key, value, kind):
    with pytest.raises(SettingsError, match=kind):
        load_settings(environ={key: value})


@pytest.mark.parametrize(("overrides", "kind"), [
    ({"issuer": 5}, "string"),
    ({"trusted_proxies": True}, "integer"),
    ({"locales": ["de", 3]}, "list of strings"),
    ({"debug": "perhaps"}, "boolean"),
    ({"session_idle_minutes": 1.5}, "integer"),
    ({"session_idle_minutes": "90 minutes"}, "integer"),
])
def test_override_type_errors(overrides, kind):
    with pytest.raises(SettingsError, match=kind):
        load_settings(overrides, environ={})


def test_file_type_error_names_the_file(tmp_path):
    config = write_config(tmp_path, 'session_idle_minutes = "soon"\n')
    with pytest.raises(SettingsError, match="servicekonto.toml.*session_idle_minutes"):
        load_settings(environ={"SERVICEKONTO_CONFIG": str(config)})


def test_missing_or_broken_config_file(tmp_path):
    with pytest.raises(SettingsError, match="config file not found"):
        load_settings(environ={"SERVICEKONTO_CONFIG": str(tmp_path / "nope.toml")})
    broken = write_config(tmp_path, "this is = not = toml\n")
    with pytest.raises(SettingsError, match="invalid TOML"):
        load_settings(environ={"SERVICEKONTO_CONFIG": str(broken)})


def test_invalid_env_name_and_weak_argon2_outside_testing():
    with pytest.raises(SettingsError, match="env must be"):
        load_settings({"env": "staging"}, environ={})
    with pytest.raises(SettingsError, match="argon2_memory_kib"):
        load_settings({"env": "development", "argon2_memory_kib": 1024}, environ={})
    # Tests may use cheap hashing.
    assert load_settings({"env": "testing", "argon2_memory_kib": 1024},
                         environ={})["argon2_memory_kib"] == 1024


def test_production_accepts_a_complete_configuration():
    settings = load_settings(PRODUCTION_OK, environ={})
    assert settings["env"] == "production"


@pytest.mark.parametrize(("change", "message"), [
    ({"secret_key": ""}, "production needs secret_key"),
    ({"secret_key": "short-secret"}, "at least 32 characters"),
    ({"issuer": "http://konto.example.org"}, "https issuer"),
    ({"debug": True}, "debug must be false"),
    ({"session_cookie_secure": False}, "session_cookie_secure"),
    ({"mail_smtp_host": ""}, "mail_smtp_host"),
    ({"key_encryption_key": ""}, "key_encryption_key"),
    ({"pairwise_salt": ""}, "pairwise_salt"),
    ({"allow_loopback_http": True}, "allow_loopback_http"),
])
def test_production_refusals(change, message):
    with pytest.raises(SettingsError, match=message):
        load_settings({**PRODUCTION_OK, **change}, environ={})


def test_production_is_the_default_env_and_refuses_to_start_unconfigured():
    with pytest.raises(SettingsError, match="production needs secret_key"):
        load_settings(environ={})


def test_create_app_refuses_invalid_production_settings(tmp_path):
    with pytest.raises(SettingsError):
        create_app({**PRODUCTION_OK, "issuer": "http://x.example",
                    "instance_path": str(tmp_path)})


def test_secret_key_is_generated_once_with_mode_0600(tmp_path):
    instance = tmp_path / "instance"
    settings = load_settings({"env": "development", "instance_path": str(instance)}, environ={})
    key = ensure_secret_key(settings)
    key_file = instance / "secret_key"
    assert key_file.exists()
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert len(key) >= 32
    assert key_file.read_text().strip() == key
    # A later start (fresh settings) reuses the file instead of generating a new key.
    fresh = load_settings({"env": "development", "instance_path": str(instance)}, environ={})
    assert ensure_secret_key(fresh) == key
    for other in ("key_encryption_key", "pairwise_salt"):
        assert stat.S_IMODE(os.stat(instance / other).st_mode) == 0o600


def test_generated_key_is_used_by_the_app(tmp_path):
    instance = tmp_path / "instance"
    app = create_app({"env": "development", "instance_path": str(instance),
                      "database_url": f"sqlite:///{tmp_path / 'x.db'}"})
    assert app.config["SECRET_KEY"] == (instance / "secret_key").read_text().strip()
    again = create_app({"env": "development", "instance_path": str(instance),
                        "database_url": f"sqlite:///{tmp_path / 'x.db'}"})
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"]


def test_configured_secret_key_wins_and_no_file_is_written(tmp_path):
    settings = load_settings({"env": "development", "instance_path": str(tmp_path),
                              "secret_key": "k" * 40}, environ={})
    assert ensure_secret_key(settings) == "k" * 40
    assert not (tmp_path / "secret_key").exists()


def test_empty_secret_key_file_is_an_error(tmp_path):
    (tmp_path / "secret_key").write_text("")
    settings = load_settings({"env": "development", "instance_path": str(tmp_path)}, environ={})
    with pytest.raises(SettingsError, match="empty"):
        ensure_secret_key(settings)


def test_shipped_config_files_load():
    root = DEFAULTS_FILE.parent
    dev = load_settings(environ={"SERVICEKONTO_CONFIG": str(root / "development.toml")})
    assert dev["env"] == "development" and dev["session_cookie_secure"] is False
    example = load_settings(
        environ={"SERVICEKONTO_CONFIG": str(root / "production.example.toml"),
                 "SERVICEKONTO_SECRET_KEY": "s" * 48,
                 "SERVICEKONTO_KEY_ENCRYPTION_KEY": PRODUCTION_OK["key_encryption_key"],
                 "SERVICEKONTO_PAIRWISE_SALT": "p" * 40})
    assert example["env"] == "production"
