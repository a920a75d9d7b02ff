"""The backup role's jobs as systemd runs them: the service the _systemd role renders from the role's
schedule step (tasks/schedule.yml), with freshness kept for both instances."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml
from conftest import REPO_ROOT, run_playbook
from support.role_template import render_role_template, role_vars


def _schedule_vars() -> dict:
    (task,) = yaml.safe_load((REPO_ROOT / "roles/backup/tasks/schedule.yml").read_text())
    return task["vars"]


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> str:
    tmp_path = tmp_path_factory.mktemp("schedule")
    overrides = {
        **role_vars("backup"),
        **_schedule_vars(),
        "backup_enabled": True,
        "backup_stores": [{"name": "mlflow", "path": "/var/lib/mlflow/mlflow.db"}],
    }
    return render_role_template("_systemd", "job.service.j2", tmp_path / "mlops-backup@.service", tmp_path, overrides)


def test_the_service_runs_the_script_per_instance_and_records_success(service):
    lines = service.splitlines()
    assert "ExecStart=/usr/bin/python3 /usr/local/sbin/mlops-backup %i" in lines
    # Freshness (the _systemd role's contract): a success stamps mlops-backup@<instance>.
    assert any(line.startswith("ExecStartPost=+") and line.endswith(" mlops-backup@%i") for line in lines), service
    assert "User=root" in lines and "UMask=0077" in lines


def test_the_sandbox_reaches_the_network_and_writes_only_staging(service):
    lines = service.splitlines()
    assert "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" in lines
    assert "PrivateNetwork=true" not in lines
    assert "ReadWritePaths=/var/lib/mlops-backup/staging" in lines
    assert "ProtectSystem=strict" in lines
    # Root's only capabilities: reading the mlflow user's stores, on the filter's one line.
    caps = [line for line in lines if line.startswith("CapabilityBoundingSet=")]
    assert caps == ["CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_DAC_OVERRIDE"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_reads_the_service(service, tmp_path):
    unit = tmp_path / "mlops-backup@.service"
    unit.write_text(service)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"{unit}"], capture_output=True, text=True, check=False
    )
    # verify also complains about the missing ExecStart binaries on this machine; not about the unit's syntax.
    assert "Unknown key" not in proc.stderr and "Failed to parse" not in proc.stderr, proc.stderr


def test_the_role_off_by_default_changes_and_probes_nothing(tmp_path):
    # The site playbook runs the role on every mlflow server: off, it only looks for units to remove.
    play = {"hosts": "localhost", "gather_facts": False, "roles": ["mlops.mlflow.backup"]}
    proc = run_playbook([play], tmp_path, check=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    ran = [(task["task"]["name"], task["hosts"]["localhost"]) for task in json.loads(proc.stdout)["plays"][0]["tasks"]]
    assert [name for name, result in ran if result.get("changed")] == []
    probe = [
        result
        for name, result in ran
        if name.endswith("Probe the backup target and the artifact store with the given keys")
    ]
    assert probe and all(result.get("skipped") for result in probe)
