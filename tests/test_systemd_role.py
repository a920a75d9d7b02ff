"""mlops.mlflow._systemd is plumbing for the other roles: every entry point refuses to run from a play."""

from __future__ import annotations

import json

import pytest
from conftest import run_playbook

# Valid options, so the role's argument spec passes and the parent check is what fails.
ENTRY_POINTS = {
    "job": {
        "_systemd_job_name": "mlops-test-job",
        "_systemd_job_description": "A test job",
        "_systemd_job_exec_start": "/bin/true",
    },
    "catch_up": {"_systemd_catch_up_name": "mlops-test.service"},
    "account": {
        "_systemd_account_user": "mlops-test",
        "_systemd_account_group": "mlops-test",
        "_systemd_account_home": "/nonexistent",
    },
}


@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
def test_entry_point_refuses_a_play_as_its_parent(tmp_path, entry_point):
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Include the internal role from a play",
                "ansible.builtin.include_role": {"name": "mlops.mlflow._systemd", "tasks_from": entry_point},
                "vars": ENTRY_POINTS[entry_point],
            }
        ],
    }
    proc = run_playbook([play], tmp_path, check=True)
    assert proc.returncode != 0
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    # The json callback names a role's task "<role> : <task>".
    results = {task["task"]["name"].split(" : ", 1)[-1]: task["hosts"]["localhost"] for task in tasks}
    # The options were valid: the spec check of this entry point passed, and nothing ran after the parent check.
    validated = [name for name in results if name.startswith(f"Validating arguments against arg spec '{entry_point}'")]
    assert validated and not results[validated[0]].get("failed"), results
    assert list(results)[-1] == "Check _systemd is included from another role", list(results)
    failed = results["Check _systemd is included from another role"]
    assert failed["failed"]
    assert failed["msg"].startswith("mlops.mlflow._systemd is an internal role: include it from another role's tasks")
    assert f"tasks_from={entry_point} " in failed["msg"]
