# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)
"""The one place that says what a weak secret is: mlops.mlflow.weak_secret."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: weak_secret
author: mlops.mlflow contributors
version_added: "0.1.0"
short_description: A secret too weak to deploy
description:
  - True when the value is not a string, is shorter than O(min_length) characters, is the unfilled
    example of the collection's vault templates (C(<db password>)), or is a well-known placeholder
    (C(changeme), C(password), C(minioadmin), AWS's documented example key, ...), also with its case,
    punctuation or trailing digits changed (C(Change-Me-2024)).
  - Every role's preflight and the layout step refuse secrets with this test, so the rule lives here
    once. Use the filter P(mlops.mlflow.secret_weakness#filter) in a message to say which rule
    failed without printing the value.
options:
  _input:
    description: The secret.
    type: raw
    required: true
  min_length:
    description: The fewest characters the secret may have.
    type: int
    default: 12
"""

EXAMPLES = r"""
- name: Check postgres_db_password is not a weak secret
  ansible.builtin.assert:
    that: postgres_db_password is not mlops.mlflow.weak_secret(12)
    fail_msg: postgres_db_password {{ postgres_db_password | mlops.mlflow.secret_weakness(12) }}.
"""

RETURN = r"""
_value:
  description: Whether the secret is weak.
  type: bool
"""

import re

# Placeholders people leave in, or copy from documentation: compared in lower case.
PLACEHOLDERS = frozenset(
    [
        "changeme",
        "change-me",
        "password",
        "password1234",
        "admin",
        "secret",
        "mlflow",
        "postgres",
        "minioadmin",
        # The secret access key of AWS's documentation.
        "wjalrxutnfemi/k7mdeng/bpxrficyexamplekey",
    ]
)
# The same words with case, punctuation and trailing digits taken off (Change-Me-2024 -> changeme).
_WORDS = frozenset(re.sub(r"[^a-z0-9]", "", word) for word in PLACEHOLDERS)
# The collection's vault templates: "<db password>", "<32+ characters>".
_TEMPLATE = re.compile(r"^\s*<[^<>]*>\s*$")


def _word(value):
    return re.sub(r"[0-9]+$", "", re.sub(r"[^a-z0-9]", "", value.lower()))


def weakness(value, min_length=12):
    """Why the secret is weak, in words that never repeat it; None for a strong one."""
    min_length = int(min_length)
    if not isinstance(value, str):
        return "is not a string"
    if not value:
        return "is empty"
    if len(value) < min_length:
        return "has %d characters, fewer than %d" % (len(value), min_length)
    if _TEMPLATE.match(value):
        return "is still the <...> example of the vault template"
    if value.lower() in PLACEHOLDERS or _word(value) in _WORDS:
        return "is a well-known placeholder"
    return None


def weak_secret(value, min_length=12):
    """True for a secret the collection refuses (see weakness)."""
    return weakness(value, min_length) is not None


class TestModule(object):
    def tests(self):
        return {"weak_secret": weak_secret}
