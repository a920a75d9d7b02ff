# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)
"""Parse and normalise S3 bucket policies so that equal meaning compares equal.

Pure Python, no third-party imports. The canonical form:

* dict keys sorted (recursively, through ``json.dumps(sort_keys=True)`` when comparing);
* ``Version`` defaults to ``2012-10-17``;
* ``Statement`` is always a list; it is compared as a set (order and duplicates ignored);
* in a statement, ``Action``/``NotAction``/``Resource``/``NotResource`` values, each
  ``Principal``/``NotPrincipal`` value (except the bare ``"*"``) and every ``Condition``
  value are sorted lists of unique items, so ``"s3:GetObject"`` equals ``["s3:GetObject"]``;
* ``Sid`` and everything else is kept as written (significant).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

DEFAULT_VERSION = "2012-10-17"
_LIST_KEYS = ("Action", "NotAction", "Resource", "NotResource")
_PRINCIPAL_KEYS = ("Principal", "NotPrincipal")


class PolicyError(ValueError):
    """The policy is not a JSON object with a usable ``Statement``."""


def _canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _as_sorted_list(value):
    items = value if isinstance(value, list) else [value]
    unique = {}
    for item in items:
        unique[_canonical(item)] = item
    return [unique[key] for key in sorted(unique)]


def _normalize_principal(value):
    if isinstance(value, dict):
        return dict((kind, _as_sorted_list(ids)) for kind, ids in value.items())
    if isinstance(value, list):
        return _as_sorted_list(value)
    return value


def _normalize_condition(value):
    if not isinstance(value, dict):
        return value
    result = {}
    for operator, tests in value.items():
        if isinstance(tests, dict):
            result[operator] = dict((key, _as_sorted_list(values)) for key, values in tests.items())
        else:
            result[operator] = tests
    return result


def normalize_statement(statement):
    """Return one statement in canonical form (a new dict)."""
    if not isinstance(statement, dict):
        raise PolicyError("every Statement entry must be an object, got %s" % type(statement).__name__)
    result = {}
    for key, value in statement.items():
        if key in _LIST_KEYS:
            result[key] = _as_sorted_list(value)
        elif key in _PRINCIPAL_KEYS:
            result[key] = _normalize_principal(value)
        elif key == "Condition":
            result[key] = _normalize_condition(value)
        else:
            result[key] = value
    return result


def load_policy(value):
    """Turn the module's ``policy`` option (dict, JSON text, or None) into a dict or None.

    ``None`` means "leave the policy alone"; ``{}`` (or an empty string) means "no policy".
    Raises PolicyError for text that is not a JSON object, or a policy without statements.
    """
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8")
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise PolicyError("policy is not valid JSON: %s" % exc) from exc
    if not isinstance(value, dict):
        raise PolicyError("policy must be a JSON object (a dict), got %s" % type(value).__name__)
    if not value:
        return {}
    statements = value.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise PolicyError("policy needs a non-empty Statement list")
    for statement in statements:
        if not isinstance(statement, dict):
            raise PolicyError("every Statement entry must be an object, got %s" % type(statement).__name__)
    return value


def normalize_policy(policy):
    """Return the canonical form of a policy dict, or None for None/{}.

    The statements come out sorted by their canonical JSON, duplicates dropped.
    """
    if not policy:
        return None
    result = {}
    for key, value in policy.items():
        if key != "Statement":
            result[key] = value
    result.setdefault("Version", DEFAULT_VERSION)
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        raise PolicyError("policy Statement must be a list or an object")
    unique = {}
    for statement in statements:
        normalized = normalize_statement(statement)
        unique[_canonical(normalized)] = normalized
    result["Statement"] = [unique[key] for key in sorted(unique)]
    return json.loads(_canonical(result))


def policies_equal(left, right):
    """True when two policies (dicts, None or {}) mean the same after normalisation."""
    return _canonical(normalize_policy(left)) == _canonical(normalize_policy(right))


def policy_from_text(text):
    """Parse a policy as returned by GetBucketPolicy (JSON text); None for empty text."""
    if text is None or not str(text).strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise PolicyError("the endpoint returned a policy that is not JSON: %s" % exc) from exc
