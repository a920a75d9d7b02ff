"""Unit tests for plugins/module_utils/htpasswd_file.py: parse/render, identify, verify-then-set, validation."""

from __future__ import annotations

import pytest
from ansible_collections.mlops.mlflow.plugins.module_utils import htpasswd_file as hf

APR_ALICE = "$apr1$abcdefgh$0123456789abcdefghijkl"
SAMPLE = f"# managed users\nalice:{APR_ALICE}\n\n  # indented comment\nbob:{{SHA}}xyz=\n"
PASSWORD = "pw-alice-000001"


def sha512(password=PASSWORD, rounds=5000):
    return hf.make_hash(password, "sha512_crypt", rounds)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        SAMPLE,
        SAMPLE.rstrip("\n"),  # no trailing newline
        SAMPLE.replace("\n", "\r\n"),  # CRLF
        "# only a comment",
        "# mixed\r\nalice:x\nbob:y\r\n",
        "# unicode \u2028 \x0c kept\nalice:x\n",
        " alice:x\n",  # leading space belongs to the name, as nginx reads it
    ],
)
def test_parse_render_round_trip_is_byte_identical(text):
    assert hf.HtpasswdFile.parse(text).render() == text


def test_parse_keeps_users_in_order():
    assert hf.HtpasswdFile.parse(SAMPLE).users() == ["alice", "bob"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alice:x\n", "alice:x\ncarol:H\n"),
        ("alice:x", "alice:x\ncarol:H"),
        ("alice:x\r\n", "alice:x\r\ncarol:H\r\n"),
        ("alice:x\r\nbob:y", "alice:x\r\nbob:y\r\ncarol:H"),
        ("", "carol:H\n"),
        ("# c\n\n", "# c\n\ncarol:H\n"),
    ],
)
def test_new_users_are_appended_keeping_the_line_ending_convention(text, expected):
    htfile = hf.HtpasswdFile.parse(text)
    htfile.set_hash("carol", "H")
    assert htfile.render() == expected


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        ("alice:x\nbob:y\ncarol:z\n", "bob", "alice:x\ncarol:z\n"),
        ("alice:x\nbob:y", "bob", "alice:x"),
        ("# c\nbob:y\n# d\n", "bob", "# c\n# d\n"),
        ("bob:y", "bob", ""),
    ],
)
def test_remove_drops_only_that_line(text, name, expected):
    htfile = hf.HtpasswdFile.parse(text)
    assert htfile.remove(name) is True
    assert htfile.render() == expected
    assert htfile.remove(name) is False


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("alice\n", 1),
        (f"ok:{APR_ALICE}\n:nohash\n", 2),
        ("a:b:c\n", 1),
        ("alice:\n", 1),
        ("# c\n\nalice:x\nalice:y\n", 4),
        ("alice:x\rbob:y\n", 1),
        ("# comment\rbob:y\n", 1),
        ("alice:x\0\n", 1),
        ("alice:x\nbob:y\ncarol plaintext-password\n", 3),
    ],
)
def test_parse_rejects_malformed_lines_naming_the_line(text, line):
    with pytest.raises(hf.MalformedFileError, match=f"^line {line} ") as caught:
        hf.HtpasswdFile.parse(text)
    assert caught.value.line_number == line
    assert "plaintext-password" not in str(caught.value)


@pytest.mark.parametrize(
    ("hashed", "expected"),
    [
        ("$6$saltsalt$" + "a" * 86, ("sha512_crypt", 5000)),
        ("$6$rounds=5000$saltsalt$" + "a" * 86, ("sha512_crypt", 5000)),
        ("$6$rounds=656000$saltsalt$" + "a" * 86, ("sha512_crypt", 656000)),
        ("$5$saltsalt$" + "a" * 43, ("sha256_crypt", 5000)),
        ("$2y$05$" + "a" * 53, ("bcrypt", 5)),
        ("$2b$12$" + "a" * 53, ("bcrypt", 12)),
        ("$2a$10$" + "a" * 53, ("bcrypt", 10)),
        (APR_ALICE, ("apr_md5_crypt", None)),
        ("{SHA}abc=", (None, None)),
        ("plaincryptXY", (None, None)),
        ("$1$salt$hash", (None, None)),
    ],
)
def test_identify_reads_scheme_and_cost_from_the_prefix(hashed, expected):
    assert hf.identify(hashed) == expected


@pytest.mark.parametrize(
    ("scheme", "rounds"),
    [("sha512_crypt", 5000), ("sha512_crypt", 6000), ("sha256_crypt", 5000), ("bcrypt", 5), ("apr_md5_crypt", None)],
)
def test_make_hash_round_trips_through_identify_and_verifies(scheme, rounds):
    hashed = hf.make_hash(PASSWORD, scheme, rounds)
    assert hf.identify(hashed) == (scheme, rounds)
    assert hf.verifies(PASSWORD, hashed, scheme, rounds)
    assert not hf.verifies("other-password", hashed, scheme, rounds)


def test_default_rounds_write_no_rounds_field_like_glibc():
    assert not sha512().startswith("$6$rounds=")
    assert sha512(rounds=6000).startswith("$6$rounds=6000$")


def test_bcrypt_writes_the_2y_ident():
    assert hf.make_hash(PASSWORD, "bcrypt", 4).startswith("$2y$04$")


@pytest.mark.parametrize(
    ("scheme", "rounds"), [("sha512_crypt", None), ("sha256_crypt", None), ("bcrypt", None), ("apr_md5_crypt", None)]
)
def test_verify_then_set_keeps_the_hash_byte_for_byte(scheme, rounds):
    rounds = hf.resolve_rounds(scheme, rounds)
    text = f"# keep\nalice:{hf.make_hash(PASSWORD, scheme, rounds)}\nbob:{APR_ALICE}\n"
    outcome = hf.ensure(text, "alice", "present", password=PASSWORD, scheme=scheme)
    assert outcome.action == "unchanged" and not outcome.changed
    assert outcome.text.encode() == text.encode()


def test_an_explicit_rounds_5000_field_counts_as_the_default():
    text = f"alice:{hf.make_hash(PASSWORD, 'sha512_crypt', 5000).replace('$6$', '$6$rounds=5000$', 1)}\n"
    outcome = hf.ensure(text, "alice", "present", password=PASSWORD)
    assert outcome.action == "unchanged" and outcome.text == text


@pytest.mark.parametrize(
    ("scheme", "rounds"),
    [("sha256_crypt", None), ("sha512_crypt", 7000), ("bcrypt", None), ("bcrypt", 4), ("apr_md5_crypt", None)],
)
def test_scheme_or_cost_change_rehashes_that_line_only(scheme, rounds):
    text = f"# keep\nalice:{sha512()}\nbob:{APR_ALICE}\n"
    outcome = hf.ensure(text, "alice", "present", password=PASSWORD, scheme=scheme, rounds=rounds)
    assert outcome.action == "updated"
    lines = outcome.text.splitlines()
    assert [lines[0], lines[2]] == ["# keep", f"bob:{APR_ALICE}"]
    new_hash = lines[1].split(":", 1)[1]
    assert hf.identify(new_hash) == (scheme, hf.resolve_rounds(scheme, rounds))
    assert hf.verifies(PASSWORD, new_hash, scheme, hf.resolve_rounds(scheme, rounds))


def test_unknown_stored_scheme_is_rehashed():
    outcome = hf.ensure("bob:{SHA}xyz=\n", "bob", "present", password=PASSWORD)
    assert outcome.action == "updated"
    assert hf.identify(outcome.text.split(":", 1)[1].strip()) == ("sha512_crypt", 5000)


def test_new_password_rewrites_only_that_line():
    text = SAMPLE + f"carol:{sha512('pw-carol-0001')}\n"
    outcome = hf.ensure(text, "alice", "present", password="new-password-01")
    assert outcome.action == "updated"
    before, after = text.splitlines(), outcome.text.splitlines()
    assert [i for i, (a, b) in enumerate(zip(before, after)) if a != b] == [1]
    assert len(before) == len(after)


def test_on_create_leaves_an_existing_line_alone_even_if_password_and_scheme_differ():
    text = f"alice:{APR_ALICE}\n"
    outcome = hf.ensure(text, "alice", "present", password="another-pass", scheme="bcrypt", update_password="on_create")
    assert (outcome.action, outcome.text) == ("unchanged", text)
    added = hf.ensure(text, "dave", "present", password="pw-dave-00001", update_password="on_create")
    assert added.action == "added"
    assert hf.HtpasswdFile.parse(added.text).users() == ["alice", "dave"]


def test_absent_removes_only_that_user_and_is_idempotent():
    outcome = hf.ensure(SAMPLE, "alice", "absent")
    assert outcome.action == "removed"
    assert outcome.text == "# managed users\n\n  # indented comment\nbob:{SHA}xyz=\n"
    again = hf.ensure(outcome.text, "alice", "absent")
    assert (again.action, again.text) == ("unchanged", outcome.text)


def test_absent_does_not_need_a_password_or_passlib(monkeypatch):
    monkeypatch.setattr(hf, "HAS_PASSLIB", False)
    assert hf.ensure(SAMPLE, "bob", "absent").action == "removed"


def test_missing_passlib_is_reported_for_present(monkeypatch):
    monkeypatch.setattr(hf, "HAS_PASSLIB", False)
    with pytest.raises(hf.MissingLibraryError, match="passlib"):
        hf.ensure(SAMPLE, "alice", "present", password=PASSWORD)


def test_listing_names_users_and_schemes_never_hashes():
    text = f"alice:{sha512()}\nbob:{hf.make_hash(PASSWORD, 'bcrypt', 4)}\ncarol:{APR_ALICE}\ndave:{{SHA}}x=\n"
    outcome = hf.ensure(text, "erin", "present", password=PASSWORD)
    assert outcome.before == (
        "alice (sha512_crypt, 5000 rounds)\nbob (bcrypt, cost 4)\ncarol (apr_md5_crypt)\ndave (other scheme)\n"
    )
    assert outcome.after == outcome.before + "erin (sha512_crypt, 5000 rounds) [added]\n"
    for hashed in [line.split(":", 1)[1] for line in outcome.text.splitlines()]:
        assert hashed not in outcome.before + outcome.after
    assert "$" not in outcome.before + outcome.after and PASSWORD not in outcome.after


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("a:b", "':'"),
        ("a\nb", "newline"),
        ("a\rb", "carriage return"),
        ("#alice", "comment"),
        (" alice", "whitespace"),
        ("alice ", "whitespace"),
    ],
)
def test_bad_names_are_refused(name, fragment):
    with pytest.raises(hf.InvalidInputError, match=fragment):
        hf.ensure(SAMPLE, name, "present", password=PASSWORD)
    with pytest.raises(hf.InvalidInputError):
        hf.ensure(SAMPLE, name, "absent")


@pytest.mark.parametrize(
    ("scheme", "rounds", "fragment"),
    [
        ("bcrypt", 3, "between 4 and 31"),
        ("bcrypt", 32, "between 4 and 31"),
        ("sha512_crypt", 999, "between 1000 and 999999999"),
        ("sha256_crypt", 1000000000, "between 1000 and 999999999"),
        ("sha512_crypt", -1, "between"),
        ("apr_md5_crypt", 10, "does not apply"),
        ("md5_crypt", None, "hash_scheme must be one of"),
    ],
)
def test_rounds_and_scheme_validation(scheme, rounds, fragment):
    with pytest.raises(hf.InvalidInputError, match=fragment):
        hf.ensure(SAMPLE, "alice", "present", password=PASSWORD, scheme=scheme, rounds=rounds)


@pytest.mark.parametrize(
    ("scheme", "rounds", "expected"),
    [
        ("sha512_crypt", None, 5000),
        ("sha256_crypt", None, 5000),
        ("bcrypt", None, 5),
        ("apr_md5_crypt", None, None),
        ("sha512_crypt", 1000, 1000),
        ("bcrypt", 31, 31),
    ],
)
def test_rounds_defaults_and_bounds(scheme, rounds, expected):
    assert hf.resolve_rounds(scheme, rounds) == expected


@pytest.mark.parametrize(
    ("password", "scheme", "fragment"),
    [
        ("", "sha512_crypt", "not empty"),
        (None, "sha512_crypt", "not empty"),
        ("a\0b", "sha512_crypt", "NUL"),
        ("x" * 73, "bcrypt", "72 bytes"),
        ("\u00fc" * 37, "bcrypt", "72 bytes"),  # 74 bytes in UTF-8
    ],
)
def test_bad_passwords_are_refused_without_echoing_them(password, scheme, fragment):
    with pytest.raises(hf.InvalidInputError, match=fragment) as caught:
        hf.ensure(SAMPLE, "alice", "present", password=password, scheme=scheme)
    if password:
        assert password not in str(caught.value)


def test_long_passwords_are_fine_outside_bcrypt():
    outcome = hf.ensure("", "alice", "present", password="x" * 200)
    assert hf.verifies("x" * 200, outcome.text.split(":", 1)[1].strip(), "sha512_crypt", 5000)


def test_library_errors_do_not_leak_the_password(monkeypatch):
    class Exploding:
        @staticmethod
        def hash(password):
            raise ValueError(f"cannot use {password}")

    monkeypatch.setattr(hf, "_handler", lambda scheme, rounds: Exploding)
    with pytest.raises(hf.InvalidInputError) as caught:
        hf.make_hash(PASSWORD, "sha512_crypt", 5000)
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    ("scheme", "rounds", "slow"),
    [
        ("sha512_crypt", 5000, False),
        ("sha512_crypt", 40000, False),
        ("sha512_crypt", 656000, True),
        ("bcrypt", 5, False),
        ("bcrypt", 8, False),
        ("bcrypt", 10, True),
        ("apr_md5_crypt", None, False),
    ],
)
def test_verify_cost_factor_flags_expensive_settings(scheme, rounds, slow):
    assert (hf.verify_cost_factor(scheme, rounds) >= hf.SLOW_VERIFY_FACTOR) is slow


# -- ensure_users: several users at once, exclusive ------------------------------------------------

CAROL = "$apr1$abcdefgh$0123456789abcdefghijkl"


def _users(*names):
    return [{"name": name, "password": f"pw-{name}-000001"} for name in names]


@pytest.mark.parametrize(
    ("listed", "exclusive", "expected_users", "actions"),
    [
        (["alice"], True, ["alice"], {"alice": "unchanged", "carol": "removed"}),
        (["alice"], False, ["alice", "carol"], {"alice": "unchanged"}),
        (["alice", "bob"], True, ["alice", "bob"], {"alice": "unchanged", "bob": "added", "carol": "removed"}),
        (["alice", "carol"], True, ["alice", "carol"], {"alice": "unchanged", "carol": "updated"}),
        ([], True, [], {"alice": "removed", "carol": "removed"}),
    ],
    ids=["remove-surplus", "not-exclusive-keeps", "add-and-remove", "update-no-removal", "empty-list-removes-all"],
)
def test_ensure_users_makes_the_file_hold_exactly_the_listed_users(listed, exclusive, expected_users, actions):
    text = f"# managed\nalice:{sha512('pw-alice-000001')}\ncarol:{CAROL}\n"
    outcome = hf.ensure_users(text, _users(*listed), exclusive=exclusive)
    assert outcome.actions == actions
    assert outcome.changed is (set(actions.values()) != {"unchanged"})
    assert outcome.removed == [name for name, action in actions.items() if action == "removed"]
    assert hf.HtpasswdFile.parse(outcome.text).users() == expected_users
    assert outcome.text.startswith("# managed\n"), "comments stay"
    for name in outcome.removed:
        assert name in outcome.before and name not in outcome.after
    if not outcome.changed:
        assert outcome.text == text and outcome.after == outcome.before


def test_ensure_users_is_idempotent_after_its_own_result():
    first = hf.ensure_users(f"carol:{CAROL}\n", _users("alice", "bob"), exclusive=True)
    assert first.actions == {"alice": "added", "bob": "added", "carol": "removed"}
    assert "alice (sha512_crypt, 5000 rounds) [added]\n" in first.after
    again = hf.ensure_users(first.text, _users("alice", "bob"), exclusive=True)
    assert again.changed is False and again.text == first.text
    assert again.actions == {"alice": "unchanged", "bob": "unchanged"}


def test_ensure_users_absent_removes_the_listed_users_without_passwords():
    outcome = hf.ensure_users(f"alice:{CAROL}\ncarol:{CAROL}\n", [{"name": "carol"}, {"name": "dave"}], "absent")
    assert outcome.actions == {"carol": "removed", "dave": "unchanged"}
    assert outcome.text == f"alice:{CAROL}\n"


@pytest.mark.parametrize(
    ("users", "kwargs", "fragment"),
    [
        ([{"name": "alice", "password": PASSWORD}, {"name": "a:b", "password": PASSWORD}], {}, "users[1]: name"),
        ([{"name": "alice", "password": PASSWORD}, {"name": "bob", "password": ""}], {}, "users[1]: password"),
        ([{"name": "alice", "password": PASSWORD}, {"name": "bob"}], {}, "users[1]: password"),
        (_users("alice", "alice"), {}, "listed twice"),
        ([{"name": "alice"}], {"state": "absent", "exclusive": True}, "exclusive applies to state=present"),
    ],
)
def test_ensure_users_checks_every_entry_before_deciding(users, kwargs, fragment):
    with pytest.raises(hf.InvalidInputError) as caught:
        hf.ensure_users(f"carol:{CAROL}\n", users, **kwargs)
    assert fragment in str(caught.value)
    assert PASSWORD not in str(caught.value)
