"""mlops.mlflow.weak_secret and secret_weakness: the one rule for secrets every role refuses."""

from __future__ import annotations

import pytest
from ansible_collections.mlops.mlflow.plugins.filter.secret import FilterModule, secret_weakness
from ansible_collections.mlops.mlflow.plugins.test import secret as secret_test
from ansible_collections.mlops.mlflow.plugins.test.secret import PLACEHOLDERS, weak_secret


def test_the_plugins_are_registered():
    assert set(secret_test.TestModule().tests()) == {"weak_secret"}
    assert set(FilterModule().filters()) == {"secret_weakness"}


@pytest.mark.parametrize(
    ("value", "min_length", "reason"),
    [
        (None, 12, "is not a string"),
        (123456789012345, 12, "is not a string"),
        ("", 12, "is empty"),
        ("short", 12, "has 5 characters, fewer than 12"),
        ("a-good-admin-secret", 32, "has 19 characters, fewer than 32"),
        ("a-good-admin-secret", "16", ""),
        ("<db password>", 12, "is still the <...> example of the vault template"),
        (" <alice's password> ", 12, "is still the <...> example of the vault template"),
        ("password1234", 12, "is a well-known placeholder"),
        ("PASSWORD1234", 12, "is a well-known placeholder"),
        ("Change-Me-2024!", 12, "is a well-known placeholder"),
        ("minioadmin123", 12, "is a well-known placeholder"),
        ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", 16, "is a well-known placeholder"),
        ("a-good-db-password", 12, ""),
        ("correct horse battery staple", 12, ""),
        ("twelve-chars", 12, ""),
    ],
)
def test_secret_weakness(value, min_length, reason):
    assert secret_weakness(value, min_length) == reason
    assert weak_secret(value, min_length) is bool(reason)


@pytest.mark.parametrize("placeholder", sorted(PLACEHOLDERS))
def test_every_placeholder_is_weak_at_any_length(placeholder):
    assert weak_secret(placeholder, 1)
    assert weak_secret(placeholder.upper(), 1)


def test_the_reason_never_repeats_the_secret():
    for value in ("short", "<db password>", "password1234", "Change-Me-2024!"):
        assert value.lower() not in secret_weakness(value).lower()
