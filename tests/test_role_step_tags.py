"""A role's step tags reach the tasks of the step, included ones too.

Tags set on an include_tasks or include_role stay on the include: the tasks it includes run only
if `apply` hands them the tags. So `--tags object_store_install` used to run the include and none
of the install tasks. Dynamic includes do not show in --list-tasks, so each step runs for real,
against a host that cannot be reached (a closed port on 127.0.0.1, no Python there): a task that
is attempted fails (unreachable, or censored by no_log), with the path of its file in the report. Nothing runs on this
machine but the controller.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, _ansible_env

OBJECT_STORE = {
    "object_store_admin_access_key": "ADMINKEY01",
    "object_store_admin_secret_key": "a-good-admin-secret",
    "object_store_mlflow_access_key": "MLFLOWKEY01",
    "object_store_mlflow_secret_key": "a-good-mlflow-secret",
}


def _attempted(tmp_path: Path, port: int, role: str, variables: dict, tag: str) -> list[str]:
    """The files (relative to the role's tasks/) of the tasks a --tags run attempted on the host."""
    (tmp_path / "play.yml").write_text(
        yaml.safe_dump([{"hosts": "target", "gather_facts": False, "roles": [{"role": "mlops.mlflow." + role}]}])
    )
    (tmp_path / "inventory.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "target": {
                            "ansible_connection": "ssh",
                            "ansible_host": "127.0.0.1",
                            "ansible_port": port,
                            "ansible_python_interpreter": "/nonexistent/python",
                            **variables,
                        }
                    }
                }
            }
        )
    )
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(tmp_path / "inventory.yml"),
            str(tmp_path / "play.yml"),
            "--tags",
            tag,
        ],
        capture_output=True,
        text=True,
        env=_ansible_env({"ANSIBLE_HOST_KEY_CHECKING": "false", "ANSIBLE_TIMEOUT": "5"}),
        check=False,
    )
    report = json.loads(proc.stdout)
    marker = f"/roles/{role}/tasks/"
    files = []
    for task in report["plays"][0]["tasks"]:
        name = (task["task"].get("path") or "").partition(marker)[2].rsplit(":", 1)[0]
        # A task left out by --tags is not in the report at all; main.yml holds the includes.
        if name and name != "main.yml" and "target" in task["hosts"]:
            files.append(name)
    return files


@pytest.mark.parametrize(
    ("tag", "backend", "step_files"),
    [
        ("object_store_install", "seaweedfs", {"install_seaweedfs.yml", "common.yml"}),
        ("object_store_install", "minio", {"install_minio.yml", "common.yml"}),
        ("object_store_run", "seaweedfs", {"service_seaweedfs.yml", "catch_up.yml"}),
        ("object_store_run", "minio", {"service_minio.yml", "catch_up.yml"}),
        ("object_store_identity", "minio", {"identity_minio.yml"}),
    ],
)
def test_object_store_step_tag_runs_its_included_tasks(tmp_path, free_port, tag, backend, step_files):
    attempted = _attempted(tmp_path, free_port, "object_store", {**OBJECT_STORE, "object_store_backend": backend}, tag)
    assert attempted, f"--tags {tag} attempted no task of the step"
    assert set(attempted) <= step_files, attempted


def _includes(path: Path):
    """(task, where) of every include_tasks / include_role in a task or play file, nested ones too."""

    def walk(items, where):
        for item in items or []:
            if not isinstance(item, dict):
                continue
            for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers"):
                yield from walk(item.get(key), where)
            for key in item:
                if key.split(".")[-1] in ("include_tasks", "include_role"):
                    yield item, key, f"{where}: {item.get('name')}"

    yield from walk(yaml.safe_load(path.read_text()), str(path.relative_to(REPO_ROOT)))


TASK_FILES = sorted((REPO_ROOT / "roles").glob("*/tasks/*.yml")) + sorted((REPO_ROOT / "playbooks").glob("*.yml"))
INCLUDES = [(task, key, where) for path in TASK_FILES for task, key, where in _includes(path)]


@pytest.mark.parametrize("case", INCLUDES, ids=[where for _, _, where in INCLUDES])
def test_tagged_include_applies_its_tags(case):
    """In a role every task carries its step's tags, so an include there must apply them (or be an
    import); in a playbook, an include with tags must apply the same ones."""
    task, key, where = case
    args = task[key] if isinstance(task[key], dict) else {}
    applied = set((args.get("apply") or {}).get("tags") or [])
    tags = set(task.get("tags") or [])
    if where.startswith("roles/"):
        assert applied, f"{where}: an include in a role must apply its step's tags (apply: tags:), or import"
    assert tags <= applied, f"{where}: tags {sorted(tags)} stay on the include unless applied"
