"""nginx_proxy's users step as the reconverge drift report runs it (--check --diff): a user in the
htpasswd file who is not in nginx_proxy_users is reported as drift, and the file stays untouched;
the real run removes the user, and the run after that changes nothing.

The role's tasks (tasks_from users.yml) run on localhost against a real file in a temp directory,
through ansible-playbook, with the module the role calls.
"""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.mlops.mlflow.plugins.module_utils import htpasswd_file as hf
from conftest import run_playbook

TASK = "mlops.mlflow.nginx_proxy : Set the basic auth users"
USERS = [
    {"name": "alice", "password": "drift-alice-000001"},
    {"name": "bob", "password": "drift-bob-0000001", "admin": False},  # mlops_users may carry mlflow's keys
]
INTRUDER = "mallory"


@pytest.fixture
def htfile(tmp_path):
    path = tmp_path / "mlflow.htpasswd"
    lines = [f"{user['name']}:{hf.make_hash(user['password'], 'sha512_crypt', 5000)}" for user in USERS]
    lines.insert(1, f"{INTRUDER}:{hf.make_hash('drift-mallory-0001', 'sha512_crypt', 5000)}")
    path.write_text("\n".join(lines) + "\n")
    os.chown(path, 0, 33)  # root:www-data, as the role leaves it
    os.chmod(path, 0o640)
    return path


def _users_step(tmp_path, htfile, *, check, secure_logging=True, exclusive=True):
    play = {
        "name": "nginx_proxy users",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Run the nginx_proxy users step",
                "ansible.builtin.include_role": {"name": "mlops.mlflow.nginx_proxy", "tasks_from": "users.yml"},
            }
        ],
    }
    variables = {
        "nginx_proxy_users": USERS,
        "nginx_proxy_users_exclusive": exclusive,
        "nginx_proxy_htpasswd_path": str(htfile),
        "nginx_proxy_secure_logging": secure_logging,
    }
    proc = run_playbook([play], tmp_path, variables=variables, check=check, diff=True)
    report = json.loads(proc.stdout)
    # What the drift report counts: changed tasks of the run (roles/reconverge's summary).
    changed = report["stats"]["localhost"]["changed"]
    tasks = [task for task in report["plays"][0]["tasks"] if task["task"]["name"] == TASK]
    return proc, changed, tasks[0]["hosts"]["localhost"] if tasks else {}


def _snapshot(path):
    stat = path.stat()
    return path.read_bytes(), stat.st_mtime_ns, stat.st_ino


@pytest.mark.parametrize("secure_logging", [True, False], ids=["secure-logging", "diff-shown"])
def test_extra_user_is_drift_in_check_mode_then_removed_then_unchanged(tmp_path, htfile, secure_logging):
    before = _snapshot(htfile)
    proc, changed, checked = _users_step(tmp_path, htfile, check=True, secure_logging=secure_logging)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert changed == 1, "the extra user must show as drift in check mode"
    assert checked["changed"] is True, checked
    assert _snapshot(htfile) == before, "check mode must leave the file untouched"
    if secure_logging:
        assert "diff" not in checked and "censored" in checked
    else:
        assert checked["removed"] == [INTRUDER]
        assert INTRUDER in checked["diff"]["before"] and INTRUDER not in checked["diff"]["after"]
    for user in USERS:
        assert user["password"] not in proc.stdout + proc.stderr
    assert "$6$" not in proc.stdout + proc.stderr

    proc, changed, applied = _users_step(tmp_path, htfile, check=False, secure_logging=secure_logging)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert changed == 1 and applied["changed"] is True
    assert hf.HtpasswdFile.parse(htfile.read_text()).users() == ["alice", "bob"]
    stat = htfile.stat()
    assert (stat.st_uid, stat.st_gid, oct(stat.st_mode & 0o777)) == (0, 33, "0o640")

    stored = _snapshot(htfile)
    for check in (True, False):
        proc, changed, _ = _users_step(tmp_path, htfile, check=check, secure_logging=secure_logging)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert changed == 0
    assert _snapshot(htfile) == stored


def test_not_exclusive_keeps_the_extra_user_and_reports_no_drift(tmp_path, htfile):
    before = _snapshot(htfile)
    for check in (True, False):
        proc, changed, _ = _users_step(tmp_path, htfile, check=check, exclusive=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert changed == 0
    assert _snapshot(htfile) == before
