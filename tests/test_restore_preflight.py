"""playbooks/restore.yml refuses a missing backup before any host is contacted.

The hosts sit at documentation (TEST-NET-2) addresses behind SSH: a task that touched one would
come back unreachable. A bad mlops_restore_file must stop the run in the first play, with a
message naming the variable, and no later play (which would stop the servers) may start.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO_ROOT, play_results, run_shipped_playbook

RESTORE = REPO_ROOT / "playbooks" / "restore.yml"
PREFLIGHT = "Check the restore input"


def _inventory(tmp_path: Path, with_db: bool) -> Path:
    lines = ["[mlflow_server]", "mlflow1 ansible_host=198.51.100.21"]
    if with_db:
        lines += ["[mlflow_db]", "db ansible_host=198.51.100.11"]
    lines += ["[all:vars]", "ansible_connection=ssh", "ansible_ssh_timeout=3"]
    path = tmp_path / "hosts.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


def _restore(inventory: Path, *args: str) -> tuple[int, dict]:
    return run_shipped_playbook(RESTORE, inventory, *args)


@pytest.mark.parametrize("with_db", [False, True], ids=["sqlite", "postgres"])
@pytest.mark.parametrize("bad", ["undefined", "missing", "directory", "empty"])
def test_bad_restore_file_stops_in_preflight_naming_the_variable(bad, with_db, tmp_path):
    args = {
        "undefined": [],
        "missing": ["-e", f"mlops_restore_file={tmp_path / 'no-such-backup.db'}"],
        "directory": ["-e", f"mlops_restore_file={tmp_path}"],
        "empty": ["-e", "mlops_restore_file="],
    }[bad]
    rc, report = _restore(_inventory(tmp_path, with_db), *args)
    assert rc != 0
    assert [play["play"]["name"] for play in report["plays"]] == [PREFLIGHT]
    failed = [result for result in play_results(report["plays"][0]) if result.get("failed")]
    assert len(failed) == (2 if with_db else 1), failed
    assert all("mlops_restore_file" in result["msg"] for result in failed), failed
    assert all(stats["unreachable"] == 0 and stats["changed"] == 0 for stats in report["stats"].values())


def test_check_mode_is_refused(tmp_path):
    backup = tmp_path / "mlflow-20250101T031500Z.db"
    backup.write_bytes(b"SQLite format 3\0")
    rc, report = _restore(_inventory(tmp_path, False), "--check", "-e", f"mlops_restore_file={backup}")
    assert rc != 0
    failed = [result for result in play_results(report["plays"][0]) if result.get("failed")]
    assert failed and "no check mode" in failed[0]["msg"]


def test_an_existing_file_passes_preflight(tmp_path):
    backup = tmp_path / "mlflow-20250101T031500Z.db"
    backup.write_bytes(b"SQLite format 3\0")
    # Only the preflight play's own tasks run; later plays validate role arguments on the controller.
    inventory = _inventory(tmp_path, False)
    rc, report = _restore(inventory, "--tags", "mlops_preflight", "-e", f"mlops_restore_file={backup}")
    results = play_results(report["plays"][0])
    assert results and not [result for result in results if result.get("failed")], results
    assert rc == 0, report["stats"]
    assert all(stats["unreachable"] == 0 and stats["changed"] == 0 for stats in report["stats"].values())
