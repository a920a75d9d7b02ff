"""meta/runtime.yml: every module is in the `all` action group, and module_defaults on it apply."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import run_playbook

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNTIME = yaml.safe_load((REPO_ROOT / "meta" / "runtime.yml").read_text())


def test_every_module_is_in_the_all_group():
    modules = sorted(p.stem for p in (REPO_ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
    assert modules, "no modules found"
    assert sorted(RUNTIME["action_groups"]["all"]) == modules, (
        "meta/runtime.yml action_groups.all must list exactly the modules in plugins/modules/"
    )


def test_module_defaults_on_the_group_apply(tmp_path):
    target = tmp_path / "htpasswd"
    play = {
        "name": "module_defaults by group",
        "hosts": "localhost",
        "gather_facts": False,
        "module_defaults": {"group/mlops.mlflow.all": {"path": str(target)}},
        # `path` is required: without the group default both tasks fail.
        "tasks": [
            {
                "name": "Add a user in check mode",
                "mlops.mlflow.htpasswd": {"name": "alice", "password": "correct-horse-battery"},
                "check_mode": True,
            },
            {
                "name": "Add a user",
                "mlops.mlflow.htpasswd": {"name": "alice", "password": "correct-horse-battery"},
            },
        ],
    }
    proc = run_playbook([play], tmp_path)
    assert proc.stdout.startswith("{"), proc.stderr
    report = json.loads(proc.stdout)
    results = [task["hosts"]["localhost"] for task in report["plays"][0]["tasks"]]
    assert proc.returncode == 0, results
    assert [r.get("changed") for r in results] == [True, True], results
    assert target.read_text().startswith("alice:")
