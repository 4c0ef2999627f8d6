"""Password hashing (Argon2id via argon2-cffi) and the password policy.

The policy: at least ``password_min_length`` characters, at most ``password_max_length``, not one
of the most common passwords (zxcvbn's list of 30,000 plus a short German list shipped here),
and not the account's own e-mail address or name.
"""

from __future__ import annotations

import os
import threading
from functools import cache
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app
from flask_babel import lazy_gettext as _l

_GERMAN_LIST = Path(__file__).parent / "data" / "common-passwords-de.txt"


def make_hasher(settings: dict[str, Any]) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings["argon2_time_cost"],
        memory_cost=settings["argon2_memory_kib"],
        parallelism=settings["argon2_parallelism"],
    )


def hasher() -> PasswordHasher:
    """The current app's hasher (parameters from the settings)."""
    ext = current_app.extensions
    if "servicekonto.hasher" not in ext:
        ext["servicekonto.hasher"] = make_hasher(current_app.config["SERVICEKONTO"])
    return ext["servicekonto.hasher"]


#: Argon2id is memory-hard (19 MiB per verify at OWASP's minimum) and argon2-cffi releases the
#: GIL while hashing: concurrent hashes on one core evict each other's memory from the CPU
#: caches and every one gets slower (docs/performance.md). So at most one hash per core this
#: process may run on at a time; further logins wait their turn instead of thrashing.
_SLOTS = threading.BoundedSemaphore(max(1, len(os.sched_getaffinity(0))
                                        if hasattr(os, "sched_getaffinity")
                                        else os.cpu_count() or 1))


def hash_password(password: str) -> str:
    with _SLOTS:
        return hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        with _SLOTS:
            return hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the stored hash used weaker parameters than configured now."""
    try:
        return hasher().check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


_DUMMY_HASH: dict[int, str] = {}


def burn_verify_time(password: str) -> None:
    """Spend the time of one verification (login for an unknown e-mail: no timing oracle)."""
    key = id(hasher())
    if key not in _DUMMY_HASH:
        _DUMMY_HASH[key] = hash_password("servicekonto-dummy-password")
    verify_password(_DUMMY_HASH[key], password)


@cache
def common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    words = {w.lower() for w in FREQUENCY_LISTS["passwords"]}
    words.update(line.strip().lower() for line in _GERMAN_LIST.read_text("utf-8").splitlines()
                 if line.strip() and not line.startswith("#"))
    return frozenset(words)


def password_problems(password: str, *, email: str = "", names: tuple[str, ...] = ()) -> list[str]:
    """Why ``password`` is not acceptable (empty list: it is)."""
    settings = current_app.config["SERVICEKONTO"]
    problems: list[str] = []
    shortest, longest = settings["password_min_length"], settings["password_max_length"]
    if len(password) < shortest:
        problems.append(str(_l("Use at least %(n)d characters.", n=shortest)))
    elif len(password) > longest:
        problems.append(str(_l("Use at most %(n)d characters.", n=longest)))
    lowered = password.lower()
    if lowered in common_passwords() or lowered.rstrip("0123456789!.?") in common_passwords():
        problems.append(str(_l("This password is too common. Choose one that is hard to guess.")))
    personal = [email.lower(), email.split("@")[0].lower(), *(n.lower() for n in names if n)]
    if any(p and len(p) >= 4 and p in lowered for p in personal):
        problems.append(str(_l("Do not use your e-mail address or name in the password.")))
    return problems
