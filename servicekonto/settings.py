"""Settings: one loader, one precedence.

defaults (``config/defaults.toml``) < file named by ``SERVICEKONTO_CONFIG`` <
``SERVICEKONTO_*`` environment variables < overrides passed to ``create_app``.

Every key must exist in the defaults file; an unknown key anywhere is an error, so a typo in a
production config fails the start instead of being ignored silently. Types follow the defaults.

Example::

    settings = load_settings({"database_url": "sqlite://"})
    settings["issuer"]
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = PROJECT_ROOT / "config" / "defaults.toml"
ENV_PREFIX = "SERVICEKONTO_"
CONFIG_FILE_VARIABLE = "SERVICEKONTO_CONFIG"


ARGON2_MINIMUM = {"argon2_memory_kib": 19456, "argon2_time_cost": 2, "argon2_parallelism": 1}


class SettingsError(Exception):
    """The configuration is invalid; the message says which key and why."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _coerce(key: str, value: Any, default: Any, source: str) -> Any:
    """Convert ``value`` to the type of ``default`` or raise SettingsError."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise SettingsError(f"{source}: {key} must be a boolean, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, bool | float):  # int(1.5) would silently become 1
            raise SettingsError(f"{source}: {key} must be an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{source}: {key} must be an integer, got {value!r}") from None
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{source}: {key} must be a number, got {value!r}") from None
    if isinstance(default, list):
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise SettingsError(f"{source}: {key} must be a list of strings, got {value!r}")
    if isinstance(default, str):
        if not isinstance(value, str):
            raise SettingsError(f"{source}: {key} must be a string, got {value!r}")
        return value
    raise SettingsError(f"{source}: {key} has an unsupported default type")  # pragma: no cover


def _merge(target: dict[str, Any], values: Mapping[str, Any], defaults: Mapping[str, Any],
           source: str) -> None:
    for key, value in values.items():
        if key not in defaults:
            raise SettingsError(f"{source}: unknown setting {key!r}")
        target[key] = _coerce(key, value, defaults[key], source)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: invalid TOML: {exc}") from None


def load_settings(overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the merged, validated settings as a plain dict of lower-case keys."""
    environ = os.environ if environ is None else environ
    defaults = _read_toml(DEFAULTS_FILE)
    settings: dict[str, Any] = dict(defaults)

    config_file = environ.get(CONFIG_FILE_VARIABLE, "").strip()
    if config_file:
        path = Path(config_file)
        if not path.is_absolute():
            path = (Path.cwd() / path).resolve()
        _merge(settings, _read_toml(path), defaults, str(path))

    from_env = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_FILE_VARIABLE:
            continue
        from_env[name[len(ENV_PREFIX):].lower()] = value
    _merge(settings, from_env, defaults, "environment")

    if overrides:
        _merge(settings, overrides, defaults, "overrides")

    _derive(settings)
    _validate(settings)
    return settings


def _derive(settings: dict[str, Any]) -> None:
    instance = Path(settings["instance_path"])
    if not instance.is_absolute():
        instance = PROJECT_ROOT / instance
    settings["instance_path"] = str(instance)
    if not settings["database_url"]:
        settings["database_url"] = f"sqlite:///{instance / 'servicekonto.db'}"
    if not settings["mail_outbox_dir"]:
        settings["mail_outbox_dir"] = str(instance / "mail")
    settings["issuer"] = settings["issuer"].rstrip("/")


def _validate(settings: dict[str, Any]) -> None:
    env = settings["env"]
    if env not in {"development", "testing", "production"}:
        raise SettingsError(f"env must be development, testing or production, got {env!r}")
    if settings["log_format"] not in ("text", "json"):
        raise SettingsError(f"log_format must be text or json, got {settings['log_format']!r}")
    if not settings["locales"]:
        raise SettingsError("locales must name at least one language")
    if env != "testing":
        for key, minimum in ARGON2_MINIMUM.items():
            if settings[key] < minimum:
                raise SettingsError(f"{key} must be at least {minimum} (OWASP minimum)")
    if env != "testing" and settings["rsa_key_bits"] < 3072:
        raise SettingsError("rsa_key_bits must be at least 3072 (BSI TR-02102-1)")
    if settings["password_min_length"] < 8:
        raise SettingsError("password_min_length must be at least 8")
    if env == "production":
        if not settings["secret_key"]:
            raise SettingsError("production needs secret_key (SERVICEKONTO_SECRET_KEY)")
        if len(settings["secret_key"]) < 32:
            raise SettingsError("secret_key must be at least 32 characters")
        if not settings["issuer"].startswith("https://"):
            raise SettingsError("production needs an https issuer")
        if settings["debug"]:
            raise SettingsError("debug must be false in production")
        if not settings["session_cookie_secure"]:
            raise SettingsError("session_cookie_secure must be true in production")
        if not settings["mail_smtp_host"]:
            raise SettingsError("production needs mail_smtp_host (mails cannot go to a folder)")
        for key in ("key_encryption_key", "pairwise_salt"):
            if not settings[key]:
                raise SettingsError(f"production needs {key} (SERVICEKONTO_{key.upper()})")
        if settings["allow_loopback_http"]:
            raise SettingsError("allow_loopback_http must be false in production")


#: Secrets that outside production are generated into the instance folder when not configured.
INSTANCE_SECRETS = ("secret_key", "key_encryption_key", "pairwise_salt")


def _generate_secret(key: str) -> str:
    if key == "key_encryption_key":
        import base64

        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_urlsafe(48)


def ensure_instance_secret(settings: dict[str, Any], key: str) -> str:
    """Return ``settings[key]``, generating ``<instance>/<key>`` (mode 0600) if none is set.

    Only reached outside production (production refuses to start without configured secrets).
    """
    if settings[key]:
        return settings[key]
    instance = Path(settings["instance_path"])
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)  # holds secrets and the dev database
    key_file = instance / key
    if not key_file.exists():
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race; use its value
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(_generate_secret(key))
    value = key_file.read_text().strip()
    if not value:
        raise SettingsError(f"{key_file} is empty; delete it to generate a new value")
    settings[key] = value
    return value


def ensure_secret_key(settings: dict[str, Any]) -> str:
    """Fill every instance secret (see INSTANCE_SECRETS); return the Flask secret key."""
    for key in INSTANCE_SECRETS:
        ensure_instance_secret(settings, key)
    return settings["secret_key"]


def current_settings() -> dict[str, Any]:
    """The settings of the current Flask app."""
    from flask import current_app

    return current_app.config["SERVICEKONTO"]
