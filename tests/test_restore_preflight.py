"""mlops.mlflow.restore, installed, refuses a missing backup before any host is contacted.

It runs from a user's own inventory like mlops.mlflow.site (tests/test_site_preflight.py), its
layout step first. The hosts sit at 127.0.0.1 port 9 behind SSH: a task that touched one would
come back unreachable. A bad mlops_restore_file must stop the run in the first play, with a
message naming the variable, and no later play (which would stop the servers) may start.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import play_results, run_user_playbook

LAYOUT = "Check the inventory describes a complete layout"
PREFLIGHT = "Check the restore input"
SECRETS = {
    "mlops_db_password": "restore-db-secret-01",
    "mlops_users": [{"name": "alice", "password": "restore-alice-01"}],
}


def _inventory(tmp_path: Path, with_db: bool) -> Path:
    unreached = "ansible_host=127.0.0.1 ansible_port=9"
    lines = ["[mlflow_server]", f"mlflow1 {unreached}", "[mlflow_proxy]", "mlflow1"]
    if with_db:
        lines += ["[mlflow_db]", f"db {unreached} mlops_private_address=10.9.0.11"]
        lines[1] += " mlops_private_address=10.9.0.21"
    lines += ["[all:vars]", "ansible_connection=ssh"]
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "hosts.ini").write_text("\n".join(lines) + "\n")
    (inventory / "group_vars" / "all" / "vault.yml").write_text(yaml.safe_dump(SECRETS))
    return inventory


@pytest.fixture
def _restore(installed_collection):
    return lambda inventory, *args: run_user_playbook(installed_collection, "mlops.mlflow.restore", inventory, *args)


@pytest.mark.parametrize("with_db", [False, True], ids=["sqlite", "postgres"])
@pytest.mark.parametrize("bad", ["undefined", "missing", "directory", "empty"])
def test_bad_restore_file_stops_in_preflight_naming_the_variable(_restore, bad, with_db, tmp_path):
    args = {
        "undefined": [],
        "missing": ["-e", f"mlops_restore_file={tmp_path / 'no-such-backup.db'}"],
        "directory": ["-e", f"mlops_restore_file={tmp_path}"],
        "empty": ["-e", "mlops_restore_file="],
    }[bad]
    rc, report = _restore(_inventory(tmp_path, with_db), *args)
    assert rc != 0
    assert [play["play"]["name"] for play in report["plays"]] == [LAYOUT, PREFLIGHT]
    failed = [result for result in play_results(report["plays"][1]) if result.get("failed")]
    assert len(failed) == (2 if with_db else 1), failed
    assert all("mlops_restore_file" in result["msg"] for result in failed), failed
    assert all(stats["unreachable"] == 0 and stats["changed"] == 0 for stats in report["stats"].values())


def test_check_mode_is_refused(_restore, tmp_path):
    backup = tmp_path / "mlflow-20250101T031500Z.db"
    backup.write_bytes(b"SQLite format 3\0")
    rc, report = _restore(_inventory(tmp_path, False), "--check", "-e", f"mlops_restore_file={backup}")
    assert rc != 0
    failed = [result for result in play_results(report["plays"][1]) if result.get("failed")]
    assert failed and "no check mode" in failed[0]["msg"]


def test_an_existing_file_passes_preflight(_restore, tmp_path):
    backup = tmp_path / "mlflow-20250101T031500Z.db"
    backup.write_bytes(b"SQLite format 3\0")
    # Only the preflight play's own tasks run; later plays validate role arguments on the controller.
    inventory = _inventory(tmp_path, False)
    rc, report = _restore(inventory, "--tags", "mlops_preflight", "-e", f"mlops_restore_file={backup}")
    results = play_results(report["plays"][0]) + play_results(report["plays"][1])
    assert results and not [result for result in results if result.get("failed")], results
    assert rc == 0, report["stats"]
    assert all(stats["unreachable"] == 0 and stats["changed"] == 0 for stats in report["stats"].values())


TARGET = {
    "mlops_backup_target_endpoint_url": "https://backup.lan:8443",
    "mlops_backup_target_bucket": "mlflow-backups",
    "mlops_backup_target_access_key": "BACKUPKEY1",
    "mlops_backup_target_secret_key": "restore-backup-secret-1",
    "mlops_backup_target_cipher_pass": "restore-cipher-pass-000001",
}


def _with_target(inventory: Path) -> Path:
    vault = inventory / "group_vars" / "all" / "vault.yml"
    vault.write_text(yaml.safe_dump({**yaml.safe_load(vault.read_text()), **TARGET}))
    return inventory


@pytest.mark.parametrize(
    ("args", "target", "named"),
    [
        (["-e", "mlops_restore_from=tape"], True, "mlops_restore_from must be target"),
        (["-e", "mlops_restore_from=target"], False, "set mlops_backup_target_bucket"),
        (["-e", "mlops_restore_from=target", "-e", "mlops_restore_time=yesterday"], True, "mlops_restore_time must be"),
        # A time without its offset would be read in the host's zone by one tool and in UTC by another.
        (["-e", "mlops_restore_from=target", "-e", "mlops_restore_time='2026-12-01 22:40:00'"], True, "UTC offset"),
        (["-e", "mlops_restore_time='2026-12-01 22:40:00+00'", "-e", "mlops_restore_file={file}"], True, "goes with"),
    ],
    ids=["unknown-source", "no-target", "bad-time", "no-offset", "time-from-file"],
)
def test_bad_target_restore_input_stops_in_preflight_naming_the_variable(_restore, tmp_path, args, target, named):
    inventory = _inventory(tmp_path, True)
    args = [arg.format(file=inventory / "hosts.ini") for arg in args]
    rc, report = _restore(_with_target(inventory) if target else inventory, *args)
    assert rc != 0
    assert [play["play"]["name"] for play in report["plays"]] == [LAYOUT, PREFLIGHT]
    failed = [result for result in play_results(report["plays"][1]) if result.get("failed")]
    assert failed and all(named in result["msg"] for result in failed), failed
    assert all(stats["unreachable"] == 0 and stats["changed"] == 0 for stats in report["stats"].values())


def test_a_target_restore_to_a_time_passes_preflight(_restore, tmp_path):
    inventory = _with_target(_inventory(tmp_path, True))
    args = ["-e", "mlops_restore_from=target", "-e", "mlops_restore_time='2026-12-01 22:40:00+01:00'"]
    rc, report = _restore(inventory, "--tags", "mlops_preflight", *args)
    results = play_results(report["plays"][0]) + play_results(report["plays"][1])
    assert results and not [result for result in results if result.get("failed")], results
    assert rc == 0, report["stats"]
