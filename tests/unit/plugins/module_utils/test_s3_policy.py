"""The bucket policy normaliser: equal meaning compares equal, different meaning does not."""

from __future__ import annotations

import json

import pytest
from ansible_collections.mlops.mlflow.plugins.module_utils.s3_policy import (
    PolicyError,
    load_policy,
    normalize_policy,
    policies_equal,
    policy_from_text,
)

ARN_A = "arn:aws:iam::000000000000:user/alice"
ARN_B = "arn:aws:iam::000000000000:user/bob"


def _policy(*statements, version="2012-10-17"):
    policy = {"Statement": list(statements)}
    if version is not None:
        policy["Version"] = version
    return policy


GET = {
    "Sid": "Get",
    "Effect": "Allow",
    "Principal": {"AWS": ARN_A},
    "Action": "s3:GetObject",
    "Resource": "arn:aws:s3:::b/*",
}
LIST = {
    "Sid": "List",
    "Effect": "Allow",
    "Principal": {"AWS": [ARN_A]},
    "Action": ["s3:ListBucket"],
    "Resource": ["arn:aws:s3:::b"],
}


EQUAL = {
    "identical": (_policy(GET), _policy(GET)),
    "key order": (_policy(GET), {"Statement": [dict(reversed(list(GET.items())))], "Version": "2012-10-17"}),
    "action string vs list": (_policy(GET), _policy(dict(GET, Action=["s3:GetObject"]))),
    "resource string vs list": (_policy(GET), _policy(dict(GET, Resource=["arn:aws:s3:::b/*"]))),
    "principal value string vs list": (_policy(GET), _policy(dict(GET, Principal={"AWS": [ARN_A]}))),
    "notaction string vs list": (
        _policy(dict(GET, NotAction="s3:DeleteObject")),
        _policy(dict(GET, NotAction=["s3:DeleteObject"])),
    ),
    "notresource string vs list": (
        _policy(dict(GET, NotResource="arn:aws:s3:::b/private/*")),
        _policy(dict(GET, NotResource=["arn:aws:s3:::b/private/*"])),
    ),
    "action list order": (
        _policy(dict(GET, Action=["s3:GetObject", "s3:PutObject"])),
        _policy(dict(GET, Action=["s3:PutObject", "s3:GetObject"])),
    ),
    "duplicate actions": (_policy(dict(GET, Action=["s3:GetObject", "s3:GetObject"])), _policy(GET)),
    "principal list order": (
        _policy(dict(GET, Principal={"AWS": [ARN_A, ARN_B]})),
        _policy(dict(GET, Principal={"AWS": [ARN_B, ARN_A]})),
    ),
    "statement order": (_policy(GET, LIST), _policy(LIST, GET)),
    "duplicate statement": (_policy(GET, GET), _policy(GET)),
    "single statement object vs list": ({"Version": "2012-10-17", "Statement": GET}, _policy(GET)),
    "version defaults": (_policy(GET, version=None), _policy(GET)),
    "condition value string vs list": (
        _policy(dict(GET, Condition={"StringEquals": {"aws:SourceVpc": "vpc-1"}})),
        _policy(dict(GET, Condition={"StringEquals": {"aws:SourceVpc": ["vpc-1"]}})),
    ),
    "condition value order and key order": (
        _policy(
            dict(
                GET,
                Condition={
                    "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]},
                    "Bool": {"aws:SecureTransport": "true"},
                },
            )
        ),
        _policy(
            dict(
                GET,
                Condition={
                    "Bool": {"aws:SecureTransport": ["true"]},
                    "IpAddress": {"aws:SourceIp": ["192.168.0.0/16", "10.0.0.0/8"]},
                },
            )
        ),
    ),
    "json text vs dict": (json.dumps(_policy(GET, LIST)), _policy(LIST, GET)),
    "both none": (None, None),
    "empty dict is none": ({}, None),
}

NOT_EQUAL = {
    "sid differs": (_policy(GET), _policy(dict(GET, Sid="Other"))),
    "sid missing": (_policy(GET), _policy({k: v for k, v in GET.items() if k != "Sid"})),
    "effect differs": (_policy(GET), _policy(dict(GET, Effect="Deny"))),
    "extra action": (_policy(GET), _policy(dict(GET, Action=["s3:GetObject", "s3:PutObject"]))),
    "action vs notaction": (
        _policy(GET),
        _policy({**{k: v for k, v in GET.items() if k != "Action"}, "NotAction": "s3:GetObject"}),
    ),
    "other principal": (_policy(GET), _policy(dict(GET, Principal={"AWS": ARN_B}))),
    "principal star vs aws star": (_policy(dict(GET, Principal="*")), _policy(dict(GET, Principal={"AWS": "*"}))),
    "extra statement": (_policy(GET), _policy(GET, LIST)),
    "version differs": (_policy(GET), _policy(GET, version="2008-10-17")),
    "condition differs": (
        _policy(dict(GET, Condition={"StringEquals": {"aws:SourceVpc": "vpc-1"}})),
        _policy(dict(GET, Condition={"StringEquals": {"aws:SourceVpc": "vpc-2"}})),
    ),
    "condition operator differs": (
        _policy(dict(GET, Condition={"StringEquals": {"aws:SourceVpc": "vpc-1"}})),
        _policy(dict(GET, Condition={"StringLike": {"aws:SourceVpc": "vpc-1"}})),
    ),
    "case of resource": (_policy(GET), _policy(dict(GET, Resource="arn:aws:s3:::B/*"))),
    "policy vs none": (_policy(GET), None),
}


def _load(value):
    return load_policy(value) if isinstance(value, str) else value


@pytest.mark.parametrize(("left", "right"), list(EQUAL.values()), ids=list(EQUAL))
def test_equal(left, right):
    assert policies_equal(_load(left), _load(right))
    assert policies_equal(_load(right), _load(left))


@pytest.mark.parametrize(("left", "right"), list(NOT_EQUAL.values()), ids=list(NOT_EQUAL))
def test_not_equal(left, right):
    assert not policies_equal(_load(left), _load(right))
    assert not policies_equal(_load(right), _load(left))


def test_normalized_form_is_stable_and_does_not_touch_the_input():
    policy = _policy(LIST, GET)
    snapshot = json.dumps(policy, sort_keys=True)
    normalized = normalize_policy(policy)
    assert json.dumps(policy, sort_keys=True) == snapshot
    assert normalized == normalize_policy(normalized)
    assert normalized["Version"] == "2012-10-17"
    assert [st["Sid"] for st in normalized["Statement"]] == ["Get", "List"]
    assert normalized["Statement"][0]["Action"] == ["s3:GetObject"]
    assert normalized["Statement"][0]["Principal"] == {"AWS": [ARN_A]}
    assert list(normalized) == sorted(normalized)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ({}, {}), ("", {}), ("  ", {}), ("{}", {}), (b'{"Statement": []}', PolicyError)],
)
def test_load_policy_empty_and_absent(value, expected):
    if expected is PolicyError:
        with pytest.raises(PolicyError):
            load_policy(value)
    else:
        assert load_policy(value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ('{"Statement": [oops', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (42, "must be a JSON object"),
        ({"Version": "2012-10-17"}, "non-empty Statement"),
        ({"Statement": "s3:GetObject"}, "non-empty Statement"),
        ({"Statement": ["s3:GetObject"]}, "must be an object"),
    ],
)
def test_load_policy_rejects(value, fragment):
    with pytest.raises(PolicyError, match=fragment):
        load_policy(value)


def test_policy_from_text():
    assert policy_from_text(None) is None
    assert policy_from_text("") is None
    assert policy_from_text(json.dumps(_policy(GET))) == _policy(GET)
    with pytest.raises(PolicyError):
        policy_from_text("{nope")
