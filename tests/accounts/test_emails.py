"""``lookup_form`` (the login's fast normalisation) finds exactly what ``normalize_email``
stored: for every address the validator accepts, both give the same string."""

from __future__ import annotations

import random
import string

import pytest

from servicekonto.accounts.emails import InvalidEmail, lookup_form, normalize_email

SAMPLES = [
    "erika@example.org", "Erika.Mustermann@Example.ORG", "  max@example.de  ",
    "a.b-c_d+tag@sub.domain.example.com", "x!#$%&'*+/=?^_`{|}~-y@example.net",
    "UPPER@EXAMPLE.DE", "o'brien@example.ie", "user@xn--mnchen-3ya.de",
    "USER@XN--MNCHEN-3YA.DE", "jörg@example.de", "user@münchen.de", "a@b.co",
    "first..second@example.org", ".lead@example.org", "trail.@example.org",
    "no-at-sign.example.org", "two@@example.org", "a@-bad.example.org",
    "a@bad-.example.org", "a@example.123", "a@example", "a@example.test",
    "a@localhost", "\"quoted local\"@example.org", "a@[127.0.0.1]",
    "x" * 64 + "@example.org", "x" * 65 + "@example.org",
    "a@" + "l" * 63 + ".example.org", "a@" + "l" * 64 + ".example.org",
    "a@" + ".".join(["abcdefghi"] * 26) + ".de",
]


def _validator(address: str) -> str | None:
    try:
        return normalize_email(address)
    except InvalidEmail:
        return None


def _lookup(address: str) -> str | None:
    try:
        return lookup_form(address)
    except InvalidEmail:
        return None


@pytest.mark.parametrize("address", SAMPLES)
def test_same_result_as_the_validator_for_every_valid_address(address):
    expected = _validator(address)
    if expected is not None:
        assert _lookup(address) == expected
    # an address the validator refuses can have no account: whatever the lookup form is,
    # it must not be the stored form of a different, valid address
    elif (found := _lookup(address)) is not None:
        assert _validator(found) is None


def test_random_addresses_agree_with_the_validator():
    rng = random.Random(20261201)
    atom = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
    label = string.ascii_letters + string.digits + "-"
    for _ in range(3000):
        local = ".".join("".join(rng.choices(atom, k=rng.randint(1, 12)))
                         for _ in range(rng.randint(1, 3)))
        labels = ["".join(rng.choices(label, k=rng.randint(1, 10)))
                  for _ in range(rng.randint(1, 3))]
        tld = "".join(rng.choices(string.ascii_letters, k=rng.randint(2, 6)))
        address = f"{local}@{'.'.join([*labels, tld])}"
        expected = _validator(address)
        if expected is not None:
            assert _lookup(address) == expected, address
        elif (found := _lookup(address)) is not None:
            assert _validator(found) is None, address
