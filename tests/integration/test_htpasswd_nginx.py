"""mlops.mlflow.htpasswd for real (ansible-playbook) against a real nginx auth_basic and Apache's `htpasswd -v`.

Note: the run_module fixture reads results through the json stdout callback, which replaces a
result's `action` key with the task's module name, so the module's `action` is asserted in the
unit tests (tests/unit/plugins/modules/test_htpasswd.py) and here only `changed` is.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from passlib import hash as passlib_hash
from support.nginx import nginx_server  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

SCHEMES = ["sha512_crypt", "sha256_crypt", "bcrypt", "apr_md5_crypt"]
HTPASSWD = shutil.which("htpasswd") or "/usr/bin/htpasswd"
# Apache htpasswd flags that write each scheme, at the module's default cost.
HTPASSWD_FLAGS = {
    "sha512_crypt": ["-5"],
    "sha256_crypt": ["-2"],
    "bcrypt": ["-B", "-C", "5"],
    "apr_md5_crypt": ["-m"],
}


@pytest.fixture
def site(tmp_path, nginx_server):  # noqa: F811 - pytest fixture injection
    """nginx serving /index.html behind auth_basic with <tmp>/users; the file lives outside the docroot."""
    docroot = tmp_path / "www"
    docroot.mkdir()
    (docroot / "index.html").write_text("ok\n")
    htfile = tmp_path / "users"
    server = nginx_server(
        f"""
        location / {{
            root {docroot};
            auth_basic "test";
            auth_basic_user_file {htfile};
        }}
        """
    )
    server.htfile = htfile
    return server


def apache_verifies(path, user, password) -> bool:
    proc = subprocess.run([HTPASSWD, "-vb", str(path), user, password], capture_output=True, check=False)
    return proc.returncode == 0


def assert_secret_free(result, *secrets):
    text = result["_stdout"] + result["_stderr"]
    for secret in secrets:
        assert secret not in text
    for marker in ("$6$", "$5$", "$2y$", "$apr1$"):
        assert marker not in text


@pytest.mark.parametrize("scheme", SCHEMES)
def test_scheme_check_apply_idempotent_and_verified_by_nginx_and_apache(run_module, site, scheme):
    password = f"pw-alice-{scheme}"
    args = {"path": str(site.htfile), "name": "alice", "password": password, "hash_scheme": scheme}

    checked = run_module("htpasswd", args, check=True, diff=True)
    assert checked["changed"] is True, checked
    assert not site.htfile.exists()
    assert "alice" in checked["diff"]["after"]
    assert_secret_free(checked, password)

    applied = run_module("htpasswd", args, diff=True)
    assert applied["changed"] is True, applied
    assert_secret_free(applied, password)
    stored = site.htfile.read_bytes()

    again = run_module("htpasswd", args)
    assert again["changed"] is False, again
    assert site.htfile.read_bytes() == stored

    assert site.status("/index.html", "alice", password) == 200
    assert site.status("/index.html", "alice", "wrong-password") == 401
    assert site.status("/index.html", "bob", password) == 401
    assert site.status("/index.html") == 401
    assert apache_verifies(site.htfile, "alice", password)
    assert not apache_verifies(site.htfile, "alice", "wrong-password")


def test_rotation_keeps_other_users_working(run_module, site):
    users = {
        "alice": ("pw-alice-000001", "sha512_crypt"),
        "bob": ("pw-bob-0000001", "bcrypt"),
        "carol": ("pw-carol-00001", "apr_md5_crypt"),
    }
    for name, (password, scheme) in users.items():
        added = run_module(
            "htpasswd", {"path": str(site.htfile), "name": name, "password": password, "hash_scheme": scheme}
        )
        assert added["changed"] is True, added
    before = site.htfile.read_text().splitlines()

    rotated = run_module(
        "htpasswd",
        {"path": str(site.htfile), "name": "bob", "password": "pw-bob-rotated", "hash_scheme": "bcrypt"},
        diff=True,
    )
    assert rotated["changed"] is True, rotated
    assert "bob (bcrypt, cost 5) [updated]" in rotated["diff"]["after"]
    assert_secret_free(rotated, "pw-bob-rotated", "pw-bob-0000001")
    after = site.htfile.read_text().splitlines()
    assert [a == b for a, b in zip(before, after)] == [True, False, True]

    assert site.status("/index.html", "bob", "pw-bob-0000001") == 401
    assert site.status("/index.html", "bob", "pw-bob-rotated") == 200
    assert apache_verifies(site.htfile, "bob", "pw-bob-rotated")
    for name in ("alice", "carol"):
        assert site.status("/index.html", name, users[name][0]) == 200
        assert apache_verifies(site.htfile, name, users[name][0])


def test_removed_user_is_refused_and_others_stay(run_module, site):
    for name in ("dave", "erin"):
        run_module("htpasswd", {"path": str(site.htfile), "name": name, "password": f"pw-{name}-000001"})
    assert site.status("/index.html", "dave", "pw-dave-000001") == 200

    removed = run_module("htpasswd", {"path": str(site.htfile), "name": "dave", "state": "absent"}, diff=True)
    assert removed["changed"] is True, removed
    assert "dave" in removed["diff"]["before"] and "dave" not in removed["diff"]["after"]
    assert site.status("/index.html", "dave", "pw-dave-000001") == 401
    assert site.status("/index.html", "erin", "pw-erin-000001") == 200


@pytest.mark.parametrize("scheme", SCHEMES)
def test_hash_written_by_apache_htpasswd_is_recognised_and_kept(run_module, site, scheme):
    """A file made with Apache's htpasswd at the module's default cost verifies: no rehash, changed=false."""
    subprocess.run(
        [HTPASSWD, "-c", "-b", *HTPASSWD_FLAGS[scheme], str(site.htfile), "alice", "pw-apache-0001"],
        check=True,
        capture_output=True,
    )
    stored = site.htfile.read_bytes()
    result = run_module(
        "htpasswd",
        {"path": str(site.htfile), "name": "alice", "password": "pw-apache-0001", "hash_scheme": scheme},
    )
    assert result["changed"] is False, result
    assert site.htfile.read_bytes() == stored
    assert site.status("/index.html", "alice", "pw-apache-0001") == 200


@pytest.mark.parametrize("ident", ["2y", "2b"])
def test_bcrypt_idents_both_nginx_and_apache_accept(site, ident):
    """Why $2y$ is safe: nginx (libxcrypt) and htpasswd -v accept it, as they do $2b$ on Debian 12."""
    site.htfile.write_text(f"alice:{passlib_hash.bcrypt.using(rounds=5, ident=ident).hash('pw-bcrypt-001')}\n")
    assert site.status("/index.html", "alice", "pw-bcrypt-001") == 200
    assert site.status("/index.html", "alice", "pw-bcrypt-002") == 401
    assert apache_verifies(site.htfile, "alice", "pw-bcrypt-001")
    assert not apache_verifies(site.htfile, "alice", "pw-bcrypt-002")


def test_exclusive_users_check_apply_idempotent_and_nginx_refuses_the_removed_user(run_module, site):
    """users + exclusive: check mode reports the surplus user and nginx still lets them in; the real
    run removes them (nginx answers 401) and keeps the listed users; the third run changes nothing."""
    for name in ("alice", "mallory"):
        run_module("htpasswd", {"path": str(site.htfile), "name": name, "password": f"pw-{name}-000001"})
    wanted = [
        {"name": "alice", "password": "pw-alice-000001"},
        {"name": "bob", "password": "pw-bob-0000001"},
    ]
    args = {"path": str(site.htfile), "users": wanted, "exclusive": True}
    stored = site.htfile.read_bytes()

    checked = run_module("htpasswd", args, check=True, diff=True)
    assert checked["changed"] is True, checked
    assert checked["removed"] == ["mallory"] and checked["users"]["bob"] == "added"
    assert "mallory" in checked["diff"]["before"] and "mallory" not in checked["diff"]["after"]
    assert site.htfile.read_bytes() == stored
    assert site.status("/index.html", "mallory", "pw-mallory-000001") == 200
    assert_secret_free(checked, "pw-alice-000001", "pw-bob-0000001")

    applied = run_module("htpasswd", args, diff=True)
    assert applied["changed"] is True, applied
    assert applied["removed"] == ["mallory"]
    assert_secret_free(applied, "pw-alice-000001", "pw-bob-0000001")
    assert site.status("/index.html", "mallory", "pw-mallory-000001") == 401
    assert site.status("/index.html", "alice", "pw-alice-000001") == 200
    assert site.status("/index.html", "bob", "pw-bob-0000001") == 200
    assert apache_verifies(site.htfile, "bob", "pw-bob-0000001")
    stored = site.htfile.read_bytes()

    again = run_module("htpasswd", args)
    assert again["changed"] is False and again["removed"] == [], again
    assert site.htfile.read_bytes() == stored
