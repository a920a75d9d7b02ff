"""The htpasswd module's main(): check mode, diff, atomic writes, file attributes, bad input leaves the file alone."""

from __future__ import annotations

import os

import pytest
from ansible.module_utils.common import warnings as ansible_warnings
from ansible_collections.mlops.mlflow.plugins.module_utils import htpasswd_file as hf
from ansible_collections.mlops.mlflow.plugins.modules import htpasswd

PASSWORD = "pw-alice-000001"
APR_BOB = "$apr1$abcdefgh$0123456789abcdefghijkl"


@pytest.fixture
def htfile(tmp_path):
    path = tmp_path / "users"
    path.write_text(f"# keep me\nalice:{hf.make_hash(PASSWORD, 'sha512_crypt', 5000)}\n\nbob:{APR_BOB}\n")
    os.chmod(path, 0o640)
    # An old mtime, so that any rewrite shows even on filesystems with coarse timestamps.
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    return path


def snapshot(path):
    stat = path.stat()
    return path.read_bytes(), stat.st_mtime_ns, stat.st_ino, stat.st_mode


def hashes(path):
    return [line.split(":", 1)[1] for line in path.read_text().splitlines() if line and not line.startswith("#")]


def assert_no_secrets(result, path, *passwords):
    flat = repr(result)
    for secret in passwords:
        assert secret not in flat
    if path.exists():
        for hashed in hashes(path):
            assert hashed not in flat
    assert "$6$" not in flat and "$apr1$" not in flat and "$2y$" not in flat


def run(module_main, path, check=False, diff=False, **args):
    return module_main(htpasswd.main, {"path": str(path), **args}, check=check, diff=diff)


def test_unchanged_when_password_verifies(module_main, htfile):
    before = snapshot(htfile)
    result = run(module_main, htfile, name="alice", password=PASSWORD, diff=True)
    assert result["changed"] is False
    assert (result["action"], result["user"], result["path"]) == ("unchanged", "alice", str(htfile))
    assert "diff" not in result
    assert snapshot(htfile) == before


def test_check_mode_add_reports_change_and_writes_nothing(module_main, htfile):
    before = snapshot(htfile)
    result = run(module_main, htfile, check=True, diff=True, name="carol", password="pw-carol-00001")
    assert (result["changed"], result["action"]) == (True, "added")
    assert result["diff"]["before"] == "alice (sha512_crypt, 5000 rounds)\nbob (apr_md5_crypt)\n"
    assert result["diff"]["after"] == result["diff"]["before"] + "carol (sha512_crypt, 5000 rounds) [added]\n"
    assert snapshot(htfile) == before
    assert_no_secrets(result, htfile, "pw-carol-00001")


def test_check_mode_update_and_remove_write_nothing(module_main, htfile):
    before = snapshot(htfile)
    updated = run(module_main, htfile, check=True, name="alice", password="pw-alice-NEW01")
    removed = run(module_main, htfile, check=True, name="bob", state="absent")
    assert (updated["changed"], updated["action"]) == (True, "updated")
    assert (removed["changed"], removed["action"]) == (True, "removed")
    assert snapshot(htfile) == before


def test_check_mode_does_not_create_the_file(module_main, tmp_path):
    path = tmp_path / "new"
    result = run(module_main, path, check=True, name="alice", password=PASSWORD, mode="0640")
    assert (result["changed"], result["action"]) == (True, "added")
    assert not path.exists()
    assert os.listdir(tmp_path) == []


def test_update_rewrites_one_line_atomically_and_diff_hides_secrets(module_main, htfile):
    old = htfile.read_text().splitlines()
    old_inode = htfile.stat().st_ino
    result = run(module_main, htfile, diff=True, name="alice", password="pw-alice-NEW01")
    assert (result["changed"], result["action"]) == (True, "updated")
    assert htfile.stat().st_ino != old_inode, "expected a rename, not an in-place write"
    assert oct(htfile.stat().st_mode & 0o777) == "0o640", "atomic_move keeps the existing mode"
    new = htfile.read_text().splitlines()
    assert [i for i, (a, b) in enumerate(zip(old, new)) if a != b] == [1]
    assert hf.verifies("pw-alice-NEW01", hashes(htfile)[0], "sha512_crypt", 5000)
    assert result["diff"]["after"] == "alice (sha512_crypt, 5000 rounds) [updated]\nbob (apr_md5_crypt)\n"
    assert_no_secrets(result, htfile, "pw-alice-NEW01", PASSWORD)
    assert [name for name in os.listdir(htfile.parent) if name != "users"] == []


def test_scheme_change_rehashes_with_the_same_password(module_main, htfile):
    result = run(module_main, htfile, name="alice", password=PASSWORD, hash_scheme="bcrypt", rounds=4)
    assert (result["changed"], result["action"]) == (True, "updated")
    assert hashes(htfile)[0].startswith("$2y$04$")
    again = run(module_main, htfile, name="alice", password=PASSWORD, hash_scheme="bcrypt", rounds=4)
    assert (again["changed"], again["action"]) == (False, "unchanged")
    cost = run(module_main, htfile, name="alice", password=PASSWORD, hash_scheme="bcrypt", rounds=5)
    assert (cost["changed"], cost["action"]) == (True, "updated")


def test_absent_removes_only_that_user(module_main, htfile):
    result = run(module_main, htfile, diff=True, name="bob", state="absent")
    assert (result["changed"], result["action"]) == (True, "removed")
    assert result["diff"]["after"] == "alice (sha512_crypt, 5000 rounds)\n"
    assert htfile.read_text().startswith("# keep me\nalice:$6$")
    assert hf.HtpasswdFile.parse(htfile.read_text()).users() == ["alice"]
    before = snapshot(htfile)
    again = run(module_main, htfile, name="bob", state="absent")
    assert (again["changed"], again["action"]) == (False, "unchanged")
    assert snapshot(htfile) == before


def test_on_create_leaves_an_existing_password(module_main, htfile):
    before = snapshot(htfile)
    result = run(module_main, htfile, name="bob", password="anything-else", update_password="on_create")
    assert (result["changed"], result["action"]) == (False, "unchanged")
    assert snapshot(htfile) == before
    added = run(module_main, htfile, name="dave", password="pw-dave-00001", update_password="on_create")
    assert (added["changed"], added["action"]) == (True, "added")
    assert htfile.read_text().splitlines()[-1].startswith("dave:$6$")


def test_a_symlinked_file_is_rewritten_through_the_link(module_main, htfile, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(htfile)
    result = run(module_main, link, name="carol", password="pw-carol-00001")
    assert (result["changed"], result["action"]) == (True, "added")
    assert link.is_symlink()
    assert htfile.read_text().splitlines()[-1].startswith("carol:$6$")


def test_new_file_is_private_by_default(module_main, tmp_path):
    path = tmp_path / "new"
    result = run(module_main, path, name="alice", password=PASSWORD)
    assert (result["changed"], result["action"]) == (True, "added")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert path.read_text().startswith("alice:$6$") and path.read_text().endswith("\n")
    assert os.listdir(tmp_path) == ["new"]


def test_file_attributes_are_applied_and_reported(module_main, htfile):
    result = run(module_main, htfile, name="alice", password=PASSWORD, mode="0644")
    assert (result["changed"], result["action"]) == (True, "unchanged")
    assert oct(htfile.stat().st_mode & 0o777) == "0o644"
    again = run(module_main, htfile, name="alice", password=PASSWORD, mode="0644")
    assert again["changed"] is False


def test_file_attributes_in_check_mode_change_nothing(module_main, htfile):
    before = snapshot(htfile)
    result = run(module_main, htfile, check=True, name="alice", password=PASSWORD, mode="0600")
    assert result["changed"] is True
    assert snapshot(htfile) == before


def test_missing_file_without_create_fails(module_main, tmp_path):
    result = run(module_main, tmp_path / "nope", name="a", password=PASSWORD, create=False)
    assert result["failed"] is True and "does not exist and create=false" in result["msg"]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("create", [True, False])
def test_absent_on_missing_file_is_unchanged(module_main, tmp_path, create):
    result = run(module_main, tmp_path / "nope", name="a", state="absent", create=create)
    assert (result.get("failed"), result["changed"], result["action"]) == (False, False, "unchanged")
    assert os.listdir(tmp_path) == []


def test_missing_directory_fails_cleanly(module_main, tmp_path):
    result = run(module_main, tmp_path / "no" / "users", name="a", password=PASSWORD)
    assert result["failed"] is True and "cannot create the file" in result["msg"]


def test_file_without_trailing_newline_keeps_that_convention(module_main, tmp_path):
    path = tmp_path / "users"
    path.write_bytes(b"# c\r\nbob:" + APR_BOB.encode())
    run(module_main, path, name="carol", password=PASSWORD)
    data = path.read_bytes()
    assert data.startswith(b"# c\r\nbob:" + APR_BOB.encode() + b"\r\ncarol:$6$")
    assert not data.endswith(b"\n")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"name": "a:b", "password": PASSWORD}, "':'"),
        ({"name": "a\nb", "password": PASSWORD}, "newline"),
        ({"name": "", "password": PASSWORD}, "name must not be empty"),
        ({"name": "#carol", "password": PASSWORD}, "comment"),
        ({"name": "carol", "password": ""}, "password must be set and not empty"),
        ({"name": "carol"}, "password must be set and not empty"),
        ({"name": "alice", "password": ""}, "password must be set and not empty"),
        ({"name": "carol", "password": PASSWORD, "hash_scheme": "md5"}, "hash_scheme"),
        ({"name": "carol", "password": PASSWORD, "hash_scheme": "bcrypt", "rounds": 40}, "between 4 and 31"),
        ({"name": "carol", "password": PASSWORD, "rounds": 10}, "between 1000 and 999999999"),
        ({"name": "carol", "password": PASSWORD, "hash_scheme": "apr_md5_crypt", "rounds": 10}, "does not apply"),
        ({"name": "carol", "password": PASSWORD * 5, "hash_scheme": "bcrypt"}, "72 bytes"),
        ({"name": "alice", "password": "a\0b"}, "NUL"),
        ({"name": "a:b", "state": "absent"}, "':'"),
    ],
)
@pytest.mark.parametrize("check", [False, True])
def test_bad_input_fails_and_leaves_the_file_byte_identical(module_main, htfile, args, fragment, check):
    before = snapshot(htfile)
    result = run(module_main, htfile, check=check, diff=True, **args)
    assert result["failed"] is True
    assert fragment in result["msg"]
    assert result.get("changed", False) is False and "diff" not in result
    assert_no_secrets(result, htfile, PASSWORD)
    assert snapshot(htfile) == before
    assert os.listdir(htfile.parent) == ["users"]


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b"alice:$apr1$x$y\nthis line has a plaintext-password\n", 2),
        (b"# c\nalice:x:y\n", 2),
        (b"alice:x\nalice:y\n", 2),
        (b":hash\n", 1),
    ],
)
def test_malformed_file_fails_naming_the_line_and_changes_nothing(module_main, tmp_path, content, line):
    path = tmp_path / "users"
    path.write_bytes(content)
    before = snapshot(path)
    for state in ("present", "absent"):
        result = run(module_main, path, name="bob", password=PASSWORD, state=state)
        assert result["failed"] is True and f"line {line} " in result["msg"]
        assert "plaintext-password" not in result["msg"]
        assert snapshot(path) == before
    assert os.listdir(tmp_path) == ["users"]


def test_non_utf8_file_fails(module_main, tmp_path):
    path = tmp_path / "users"
    path.write_bytes(b"alice:x\n\xff\xfe:y\n")
    before = snapshot(path)
    result = run(module_main, path, name="bob", password=PASSWORD)
    assert result["failed"] is True and "not UTF-8" in result["msg"]
    assert snapshot(path) == before


def test_directory_path_fails(module_main, tmp_path):
    result = run(module_main, tmp_path, name="bob", password=PASSWORD)
    assert result["failed"] is True and "directory" in result["msg"]


def test_missing_passlib_fails_with_missing_required_lib(module_main, htfile, monkeypatch):
    monkeypatch.setattr(hf, "HAS_PASSLIB", False)
    monkeypatch.setattr(hf, "PASSLIB_IMPORT_ERROR", "Traceback: ImportError")
    before = snapshot(htfile)
    result = run(module_main, htfile, name="alice", password=PASSWORD)
    assert result["failed"] is True
    assert "Failed to import the required Python library (passlib)" in result["msg"]
    assert result["exception"] == "Traceback: ImportError"
    assert snapshot(htfile) == before


def test_expensive_rounds_warn(module_main, tmp_path):
    run(module_main, tmp_path / "users", name="alice", password=PASSWORD, hash_scheme="bcrypt", rounds=9)
    assert any("bcrypt with rounds=9" in msg for msg in ansible_warnings.get_warning_messages())


# -- users + exclusive: the file holds exactly the listed users -------------------------------------

USERS = [{"name": "alice", "password": PASSWORD}, {"name": "dave", "password": "pw-dave-000001"}]


@pytest.mark.parametrize(
    ("users", "exclusive", "remaining", "removed"),
    [
        (USERS[:1], True, ["alice"], ["bob"]),
        (USERS, True, ["alice", "dave"], ["bob"]),
        (USERS, False, ["alice", "bob", "dave"], []),
        ([{"name": "bob", "password": "pw-bob-0000001"}], True, ["bob"], ["alice"]),
    ],
    ids=["remove-surplus", "add-and-remove", "add-only", "update-and-remove"],
)
def test_users_check_apply_apply_again(module_main, htfile, users, exclusive, remaining, removed):
    before = snapshot(htfile)
    secrets = [user["password"] for user in users]
    checked = run(module_main, htfile, check=True, diff=True, users=users, exclusive=exclusive)
    assert checked["changed"] is True and checked["removed"] == removed
    for name in removed:
        assert checked["users"][name] == "removed"
        assert name in checked["diff"]["before"] and name not in checked["diff"]["after"]
    assert snapshot(htfile) == before, "check mode leaves the file untouched"
    assert os.listdir(htfile.parent) == ["users"]
    assert "action" not in checked and "user" not in checked
    assert_no_secrets(checked, htfile, *secrets)

    applied = run(module_main, htfile, diff=True, users=users, exclusive=exclusive)
    assert applied["changed"] is True
    assert (applied["users"], applied["removed"], applied["diff"]) == (checked["users"], removed, checked["diff"])
    assert hf.HtpasswdFile.parse(htfile.read_text()).users() == remaining
    assert htfile.read_text().startswith("# keep me\n")
    assert oct(htfile.stat().st_mode & 0o777) == "0o640"
    assert [name for name in os.listdir(htfile.parent) if name != "users"] == []
    assert_no_secrets(applied, htfile, *secrets)

    stored = snapshot(htfile)
    again = run(module_main, htfile, diff=True, users=users, exclusive=exclusive)
    assert (again["changed"], again["removed"]) == (False, [])
    assert set(again["users"].values()) == {"unchanged"} and "diff" not in again
    assert snapshot(htfile) == stored


def test_exclusive_reports_only_a_removal_in_check_mode(module_main, htfile):
    """The drift-report case: every listed user verifies, one extra user is in the file."""
    before = snapshot(htfile)
    alice_and_bob = [{"name": "alice", "password": PASSWORD}]
    result = run(module_main, htfile, check=True, diff=True, users=alice_and_bob, exclusive=True)
    assert (result["changed"], result["users"], result["removed"]) == (
        True,
        {"alice": "unchanged", "bob": "removed"},
        ["bob"],
    )
    assert result["diff"]["before"] == "alice (sha512_crypt, 5000 rounds)\nbob (apr_md5_crypt)\n"
    assert result["diff"]["after"] == "alice (sha512_crypt, 5000 rounds)\n"
    assert snapshot(htfile) == before


def test_exclusive_with_nothing_to_remove_is_unchanged(module_main, htfile):
    before = snapshot(htfile)
    users = [{"name": "alice", "password": PASSWORD}, {"name": "bob", "password": "ignored-on-create"}]
    for check in (True, False):
        result = run(module_main, htfile, check=check, users=users, exclusive=True, update_password="on_create")
        assert (result["changed"], result["removed"]) == (False, [])
    assert snapshot(htfile) == before


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"name": "alice", "password": PASSWORD, "exclusive": True}, "exclusive needs users"),
        ({"name": "alice", "users": USERS}, "mutually exclusive"),
        ({"password": PASSWORD, "users": USERS}, "mutually exclusive"),
        ({}, "one of the following is required: name, users"),
        ({"users": [*USERS, {"name": "alice", "password": PASSWORD}]}, "listed twice"),
        ({"users": [{"name": "carol", "password": ""}]}, "users[0]: password must be set"),
        ({"users": USERS, "exclusive": True, "state": "absent"}, "exclusive applies to state=present"),
    ],
)
@pytest.mark.parametrize("check", [False, True])
def test_bad_users_input_fails_and_leaves_the_file_byte_identical(module_main, htfile, args, fragment, check):
    before = snapshot(htfile)
    result = run(module_main, htfile, check=check, diff=True, **args)
    assert result["failed"] is True and fragment in result["msg"], result["msg"]
    assert result.get("changed", False) is False and "diff" not in result
    assert_no_secrets(result, htfile, PASSWORD, "pw-dave-000001")
    assert snapshot(htfile) == before
