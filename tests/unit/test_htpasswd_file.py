"""Unit tests for the htpasswd file logic (parse, identify, verify-then-set)."""

from __future__ import annotations

import pytest
from ansible_collections.mlops.mlflow.plugins.module_utils import htpasswd_file as hf

SAMPLE = "# managed users\nalice:$apr1$abcdefgh$0123456789abcdefghijkl\n\nbob:{SHA}xyz=\n"


def test_parse_and_render_round_trip_keeps_comments_and_order():
    entries = hf.parse(SAMPLE)
    assert hf.user_names(entries) == ["alice", "bob"]
    assert hf.render(entries) == SAMPLE


@pytest.mark.parametrize(
    ("text", "line"),
    [("alice\n", 1), ("ok:$apr1$a$b\n:nohash\n", 2), ("a:b:c\n", 1), ("alice:\n", 1), ("a:x\na:y\n", 2)],
)
def test_parse_rejects_malformed_lines(text, line):
    with pytest.raises(hf.HtpasswdError, match=f"line {line}"):
        hf.parse(text)


@pytest.mark.parametrize(
    ("scheme", "rounds"),
    [("sha512_crypt", 5000), ("sha512_crypt", 6000), ("sha256_crypt", 5000), ("bcrypt", 5), ("apr_md5_crypt", None)],
)
def test_identify_reads_back_what_make_hash_wrote(scheme, rounds):
    hashed = hf.make_hash("s3cret-password", scheme, rounds)
    assert hf.identify(hashed) == (scheme, rounds)
    assert hf.verifies("s3cret-password", hashed, scheme, rounds)
    assert not hf.verifies("other-password", hashed, scheme, rounds)


def test_bcrypt_uses_the_2y_ident():
    assert hf.make_hash("pw-123456789", "bcrypt", 4).startswith("$2y$04$")


def test_identify_unknown_schemes():
    assert hf.identify("{SHA}abc") == (None, None)
    assert hf.identify("plain") == (None, None)


def test_verify_then_set_keeps_the_hash_byte_for_byte():
    entries = hf.parse(f"alice:{hf.make_hash('pw-alice-0001', 'sha512_crypt', 5000)}\n")
    before = entries[0].hash
    assert hf.ensure_user(entries, "alice", "pw-alice-0001", "sha512_crypt", 5000, "always") == "unchanged"
    assert entries[0].hash == before


@pytest.mark.parametrize(("scheme", "rounds"), [("sha256_crypt", 5000), ("sha512_crypt", 7000), ("bcrypt", 4)])
def test_scheme_or_rounds_change_rehashes(scheme, rounds):
    entries = hf.parse(f"alice:{hf.make_hash('pw-alice-0001', 'sha512_crypt', 5000)}\n")
    assert hf.ensure_user(entries, "alice", "pw-alice-0001", scheme, rounds, "always") == "updated"
    assert hf.identify(entries[0].hash) == (scheme, rounds)


def test_new_password_rewrites_only_that_line():
    text = SAMPLE + f"carol:{hf.make_hash('pw-carol-0001', 'sha512_crypt', 5000)}\n"
    entries = hf.parse(text)
    assert hf.ensure_user(entries, "alice", "new-password-01", "sha512_crypt", 5000, "always") == "updated"
    lines_before, lines_after = text.splitlines(), hf.render(entries).splitlines()
    changed = [i for i, (a, b) in enumerate(zip(lines_before, lines_after)) if a != b]
    assert changed == [1]


def test_on_create_leaves_an_existing_password():
    entries = hf.parse("alice:$apr1$abcdefgh$0123456789abcdefghijkl\n")
    assert hf.ensure_user(entries, "alice", "whatever-pass", "sha512_crypt", 5000, "on_create") == "unchanged"
    assert hf.ensure_user(entries, "dave", "pw-dave-00001", "sha512_crypt", 5000, "on_create") == "added"
    assert hf.user_names(entries) == ["alice", "dave"]


def test_remove_user_only_that_user():
    entries = hf.parse(SAMPLE)
    assert hf.remove_user(entries, "alice") == "removed"
    assert hf.remove_user(entries, "alice") == "unchanged"
    assert hf.render(entries) == "# managed users\n\nbob:{SHA}xyz=\n"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "a:b"}, "name"),
        ({"name": "a\nb"}, "name"),
        ({"name": ""}, "name"),
        ({"password": ""}, "password"),
        ({"password": None}, "password"),
        ({"scheme": "md5"}, "hash_scheme"),
        ({"scheme": "bcrypt", "rounds": 3}, "rounds"),
        ({"scheme": "bcrypt", "rounds": 32}, "rounds"),
        ({"scheme": "sha512_crypt", "rounds": 999}, "rounds"),
        ({"scheme": "apr_md5_crypt", "rounds": 10}, "rounds"),
    ],
)
def test_validate_rejects_bad_input(kwargs, message):
    args = {"name": "alice", "password": "pw-123456789", "scheme": "sha512_crypt", "rounds": None, "state": "present"}
    args.update(kwargs)
    with pytest.raises(hf.HtpasswdError, match=message):
        hf.validate(args["name"], args["password"], args["scheme"], args["rounds"], args["state"])


def test_validate_defaults_rounds_per_scheme():
    assert hf.validate("a", "pw-123456789", "sha512_crypt", None, "present") == 5000
    assert hf.validate("a", "pw-123456789", "bcrypt", None, "present") == 5
    assert hf.validate("a", "pw-123456789", "apr_md5_crypt", None, "present") is None
    assert hf.validate("a", None, "sha512_crypt", None, "absent") is None
