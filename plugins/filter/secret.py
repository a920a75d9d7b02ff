# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)
"""Why a secret is weak (mlops.mlflow.secret_weakness), for messages that never print it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: secret_weakness
author: mlops.mlflow contributors
version_added: "0.1.0"
short_description: The rule a weak secret breaks, without the secret
description:
  - The rule of P(mlops.mlflow.weak_secret#test) the value breaks, as words to put after the
    variable's name (C(has 5 characters, fewer than 12), C(is a well-known placeholder)); an empty
    string for a strong secret. The value itself never appears.
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
- name: Check mlflow_server_auth_secret_key is not a weak secret
  ansible.builtin.assert:
    that: mlflow_server_auth_secret_key is not mlops.mlflow.weak_secret(32)
    fail_msg: mlflow_server_auth_secret_key {{ mlflow_server_auth_secret_key | mlops.mlflow.secret_weakness(32) }}.
"""

RETURN = r"""
_value:
  description: The broken rule, or an empty string.
  type: str
"""

from ansible_collections.mlops.mlflow.plugins.test.secret import weakness


def secret_weakness(value, min_length=12):
    return weakness(value, min_length) or ""


class FilterModule(object):
    def filters(self):
        return {"secret_weakness": secret_weakness}
