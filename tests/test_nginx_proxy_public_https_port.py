"""nginx_proxy_public_https_port: its default (the listen port) and a set port pass the role's
argument validation and preflight; a value that is no port fails there, naming it.

The role runs against this machine in check mode, as in test_role_bad_input.py; a second bad
variable (one preflight rejects) stops it before any task that would touch the host.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_playbook

GOOD = {"nginx_proxy_users": [{"name": "alice", "password": "a-good-password"}]}
# Refused by the check that follows the port checks in preflight.yml: those have passed by then.
STOP = {"nginx_proxy_client_max_body_size": "lots"}


def _failure(tmp_path, extra: dict) -> tuple[str, str]:
    play = {"name": "public port", "hosts": "localhost", "gather_facts": False, "roles": ["mlops.mlflow.nginx_proxy"]}
    proc = run_playbook([play], tmp_path, variables={**GOOD, **extra}, check=True)
    assert proc.returncode != 0, proc.stdout[-2000:]
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    failed = [t for t in tasks if t["hosts"]["localhost"].get("failed")]
    assert len(failed) == 1, failed
    assert not any(t["hosts"]["localhost"].get("changed") for t in tasks)
    return failed[0]["task"]["name"].split(" : ", 1)[-1], json.dumps(failed[0]["hosts"]["localhost"])


@pytest.mark.parametrize("extra", [{}, {"nginx_proxy_public_https_port": 8443}], ids=["default", "8443"])
def test_a_port_passes_validation_and_preflight(tmp_path, extra):
    task, result = _failure(tmp_path, {**STOP, **extra})
    assert task == "Check nginx_proxy_client_max_body_size is an nginx size", result
    assert "nginx_proxy_public_https_port" not in result


@pytest.mark.parametrize(
    ("value", "task"),
    [(0, "Check nginx_proxy_public_https_port is a port number"), ("five", "Validating arguments against arg spec")],
)
def test_no_port_fails_naming_it(tmp_path, value, task):
    failed_task, result = _failure(tmp_path, {"nginx_proxy_public_https_port": value})
    assert failed_task.startswith(task), failed_task
    assert "nginx_proxy_public_https_port" in result
