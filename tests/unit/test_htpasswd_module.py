"""The htpasswd module's main(): check mode, diff, atomic writes, bad input leaves the file alone."""

from __future__ import annotations

import os

import pytest
from ansible_collections.mlops.mlflow.plugins.module_utils import htpasswd_file as hf
from ansible_collections.mlops.mlflow.plugins.modules import htpasswd

PASSWORD = "pw-alice-000001"


@pytest.fixture
def htfile(tmp_path):
    path = tmp_path / "users"
    path.write_text(
        f"# keep me\nalice:{hf.make_hash(PASSWORD, 'sha512_crypt', 5000)}\nbob:$apr1$abcdefgh$0123456789abcdefghijkl\n"
    )
    return path


def _snapshot(path):
    stat = path.stat()
    return path.read_bytes(), stat.st_mtime_ns, stat.st_ino


def test_unchanged_when_password_verifies(module_main, htfile):
    before = _snapshot(htfile)
    result = module_main(htpasswd.main, {"path": str(htfile), "name": "alice", "password": PASSWORD})
    assert (result["changed"], result["operation"]) == (False, "unchanged")
    assert _snapshot(htfile) == before


def test_check_mode_reports_and_changes_nothing(module_main, htfile):
    before = _snapshot(htfile)
    result = module_main(
        htpasswd.main, {"path": str(htfile), "name": "carol", "password": "pw-carol-00001"}, check=True, diff=True
    )
    assert (result["changed"], result["operation"]) == (True, "added")
    assert result["diff"]["after"] == "alice\nbob\ncarol\n"
    assert _snapshot(htfile) == before


def test_update_writes_atomically_and_diff_hides_secrets(module_main, htfile):
    old_inode = htfile.stat().st_ino
    result = module_main(htpasswd.main, {"path": str(htfile), "name": "alice", "password": "pw-alice-NEW01"}, diff=True)
    assert (result["changed"], result["operation"]) == (True, "updated")
    assert htfile.stat().st_ino != old_inode, "expected a rename, not an in-place write"
    text = htfile.read_text()
    assert text.startswith("# keep me\nalice:$6$") and text.endswith("bob:$apr1$abcdefgh$0123456789abcdefghijkl\n")
    flat = repr(result)
    assert "pw-alice" not in flat and "$6$" not in flat and "$apr1$" not in flat
    assert result["diff"]["before"] == result["diff"]["after"] == "alice\nbob\n"


def test_absent_removes_only_that_user(module_main, htfile):
    result = module_main(htpasswd.main, {"path": str(htfile), "name": "bob", "state": "absent"})
    assert (result["changed"], result["operation"]) == (True, "removed")
    assert hf.user_names(hf.parse(htfile.read_text())) == ["alice"]
    again = module_main(htpasswd.main, {"path": str(htfile), "name": "bob", "state": "absent"})
    assert again["changed"] is False


def test_new_file_is_private_by_default(module_main, tmp_path):
    path = tmp_path / "new"
    result = module_main(htpasswd.main, {"path": str(path), "name": "alice", "password": PASSWORD})
    assert result["changed"] is True
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_mode_is_applied(module_main, htfile):
    result = module_main(htpasswd.main, {"path": str(htfile), "name": "alice", "password": PASSWORD, "mode": "0640"})
    assert result["changed"] is True
    assert oct(htfile.stat().st_mode & 0o777) == "0o640"


def test_missing_file_without_create_fails(module_main, tmp_path):
    result = module_main(
        htpasswd.main, {"path": str(tmp_path / "nope"), "name": "a", "password": PASSWORD, "create": False}
    )
    assert result["failed"] and "create is false" in result["msg"]
    assert not (tmp_path / "nope").exists()


def test_absent_on_missing_file_is_unchanged(module_main, tmp_path):
    result = module_main(htpasswd.main, {"path": str(tmp_path / "nope"), "name": "a", "state": "absent"})
    assert result["changed"] is False
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"name": "a:b", "password": PASSWORD}, "name"),
        ({"name": "a\nb", "password": PASSWORD}, "name"),
        ({"name": "carol", "password": ""}, "password"),
        ({"name": "carol"}, "password"),
        ({"name": "carol", "password": PASSWORD, "hash_scheme": "bcrypt", "rounds": 40}, "rounds"),
    ],
)
def test_bad_input_fails_and_leaves_file_untouched(module_main, htfile, args, fragment):
    before = _snapshot(htfile)
    result = module_main(htpasswd.main, {"path": str(htfile), **args})
    assert result["failed"] is True
    assert fragment in result["msg"]
    assert PASSWORD not in result["msg"]
    assert _snapshot(htfile) == before


def test_unknown_scheme_is_refused_by_the_argument_spec(module_main, htfile):
    before = _snapshot(htfile)
    result = module_main(htpasswd.main, {"path": str(htfile), "name": "a", "password": PASSWORD, "hash_scheme": "md5"})
    assert result["failed"] is True and "hash_scheme" in result["msg"]
    assert _snapshot(htfile) == before


def test_malformed_file_fails_naming_the_line(module_main, tmp_path):
    path = tmp_path / "broken"
    path.write_text("alice:$apr1$x$y\nthis line is broken\n")
    before = _snapshot(path)
    result = module_main(htpasswd.main, {"path": str(path), "name": "bob", "password": PASSWORD})
    assert result["failed"] is True and "line 2" in result["msg"]
    assert _snapshot(path) == before
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".htpasswd-")]
