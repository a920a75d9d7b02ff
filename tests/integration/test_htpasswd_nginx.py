"""mlops.mlflow.htpasswd against a real nginx (auth_basic) and Apache's `htpasswd -v`."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from support.nginx import NginxServer

pytestmark = pytest.mark.integration

SCHEMES = ["sha512_crypt", "sha256_crypt", "bcrypt", "apr_md5_crypt"]


@pytest.fixture
def nginx(tmp_path):
    htfile = tmp_path / "users"
    server = NginxServer(
        f"""
        location / {{
            auth_basic "test";
            auth_basic_user_file {htfile};
            default_type text/plain;
            alias {tmp_path}/;
            index users;
        }}
        """
    )
    # The location serves a real file: a bare `return` would answer before the access phase.
    (tmp_path / "index.html").write_text("ok\n")
    server.start()
    server.htfile = htfile
    yield server
    server.stop()


def apache_verifies(path, user, password) -> bool:
    proc = subprocess.run(
        [shutil.which("htpasswd"), "-vb", str(path), user, password], capture_output=True, check=False
    )
    return proc.returncode == 0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_scheme_check_apply_idempotent_and_verified_by_nginx(run_module, nginx, scheme):
    args = {"path": str(nginx.htfile), "name": "alice", "password": "pw-alice-000001", "hash_scheme": scheme}
    checked = run_module("htpasswd", args, check=True)
    assert checked["changed"] is True and not nginx.htfile.exists()

    applied = run_module("htpasswd", args)
    assert applied["changed"] is True and applied["operation"] == "added"
    assert "pw-alice" not in applied["_stdout"]

    again = run_module("htpasswd", args)
    assert again["changed"] is False and again["operation"] == "unchanged"

    assert nginx.status("/index.html", "alice", "pw-alice-000001") == 200
    assert nginx.status("/index.html", "alice", "wrong-password") == 401
    assert nginx.status("/index.html") == 401
    assert apache_verifies(nginx.htfile, "alice", "pw-alice-000001")
    assert not apache_verifies(nginx.htfile, "alice", "wrong-password")


def test_rotation_keeps_other_users_working(run_module, nginx):
    users = {"alice": "pw-alice-000001", "bob": "pw-bob-0000001", "carol": "pw-carol-00001"}
    for name, password in users.items():
        run_module("htpasswd", {"path": str(nginx.htfile), "name": name, "password": password})
    before = nginx.htfile.read_text().splitlines()

    rotated = run_module(
        "htpasswd", {"path": str(nginx.htfile), "name": "bob", "password": "pw-bob-rotated", "mode": "0640"}, diff=True
    )
    assert rotated["changed"] is True and rotated["operation"] == "updated"
    after = nginx.htfile.read_text().splitlines()
    assert [a == b for a, b in zip(before, after)] == [True, False, True]

    assert nginx.status("/index.html", "bob", "pw-bob-0000001") == 401
    assert nginx.status("/index.html", "bob", "pw-bob-rotated") == 200
    for name in ("alice", "carol"):
        assert nginx.status("/index.html", name, users[name]) == 200


def test_removed_user_is_refused(run_module, nginx):
    run_module("htpasswd", {"path": str(nginx.htfile), "name": "dave", "password": "pw-dave-000001"})
    assert nginx.status("/index.html", "dave", "pw-dave-000001") == 200
    removed = run_module("htpasswd", {"path": str(nginx.htfile), "name": "dave", "state": "absent"})
    assert removed["changed"] is True
    assert nginx.status("/index.html", "dave", "pw-dave-000001") == 401
