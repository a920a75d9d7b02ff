"""Fresh-host restore drills: a backup taken by each timer's service on the old host, restored
with playbooks/restore.yml onto a fresh host, brings back every experiment, run, param and metric
step, read through the real mlflow client on the new server.

A missing or bad mlops_restore_file is refused before any host is touched: tests/test_restore_preflight.py.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
import testinfra

# Each test names its hosts itself (old or new of a pair): run each test once.
testinfra_hosts = ["ansible://mlops-restore-sqlite-new"]

KINDS = ["pg", "sqlite"]
EXPECTED = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "restore"
DRILL = Path(__file__).resolve().parent.parent / "resources" / "restore_drill.py"
MLFLOW_PYTHON = "/opt/mlflow/venv/bin/python"
BACKUPS = {
    "pg": ("/var/backups/mlops-mlflow/postgres", "mlflow-*.dump", "postgres", "mlops-mlflow-pg-backup.timer"),
    "sqlite": ("/var/backups/mlops-mlflow/sqlite", "mlflow-*.db", "mlflow", "mlflow-sqlite-backup.timer"),
}
INTEGRITY = (
    "/usr/bin/python3 -c \"import sqlite3, sys; db = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True); "
    "print(db.execute('PRAGMA integrity_check').fetchone()[0])\" "
)


@pytest.fixture(scope="module")
def restore_host(request):
    """restore_host("pg", "new") -> the testinfra host mlops-restore-pg-new."""
    inventory = request.config.option.ansible_inventory
    return lambda kind, age: testinfra.get_host(f"ansible://mlops-restore-{kind}-{age}", ansible_inventory=inventory)


def _drill(host, mode: str) -> dict:
    payload = base64.b64encode(DRILL.read_bytes()).decode()
    host.check_output(f"echo {payload} | base64 -d > /root/restore_drill.py")
    result = host.run(f"{MLFLOW_PYTHON} /root/restore_drill.py {mode}")
    assert result.rc == 0, f"restore_drill {mode} failed: {result.stdout}\n{result.stderr}"
    return json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])


def _newest(host, kind: str) -> str:
    directory, pattern, _, _ = BACKUPS[kind]
    return host.check_output(f"ls -1 {directory}/{pattern} | sort | tail -n 1").strip()


@pytest.mark.parametrize("kind", KINDS)
def test_backup_timer_enabled_on_old_and_new_hosts(restore_host, kind):
    for age in ("old", "new"):
        timer = restore_host(kind, age).service(BACKUPS[kind][3])
        assert timer.is_enabled, age
        assert timer.is_running, age


@pytest.mark.parametrize("kind", KINDS)
def test_backup_file_and_directory_modes(restore_host, kind):
    old = restore_host(kind, "old")
    directory, _, owner, _ = BACKUPS[kind]
    backup = old.file(_newest(old, kind))
    assert (backup.user, backup.mode) == (owner, 0o600)
    assert (old.file(directory).user, old.file(directory).mode) == (owner, 0o700)
    assert not old.run(f"ls -A {directory} | grep -v '^mlflow-'").stdout.strip(), "partial files left behind"


def test_sqlite_backup_passes_integrity_check_and_is_consistent(restore_host):
    old = restore_host("sqlite", "old")
    copy = _newest(old, "sqlite")
    assert old.check_output(INTEGRITY + copy).strip() == "ok"
    count = "select count(*) from runs"
    runs = old.check_output(
        f"/usr/bin/python3 -c \"import sqlite3; print(sqlite3.connect('{copy}').execute('{count}').fetchone()[0])\""
    )
    assert runs.strip() == "3"


def test_sqlite_backup_service_is_hardened(restore_host):
    old = restore_host("sqlite", "old")
    props = dict(
        line.split("=", 1)
        for line in old.check_output(
            "systemctl show mlflow-sqlite-backup.service "
            "-p User,Type,NoNewPrivileges,ProtectSystem,ProtectHome,PrivateTmp,PrivateNetwork,ReadWritePaths,Result"
        ).splitlines()
    )
    assert props["User"] == "mlflow"
    assert props["Type"] == "oneshot"
    assert props["Result"] == "success"
    assert (props["NoNewPrivileges"], props["PrivateTmp"], props["PrivateNetwork"]) == ("yes", "yes", "yes")
    assert (props["ProtectSystem"], props["ProtectHome"]) == ("strict", "yes")
    assert props["ReadWritePaths"] == "/var/backups/mlops-mlflow/sqlite"


@pytest.mark.parametrize("kind", KINDS)
def test_restored_data_matches_what_the_old_host_held(restore_host, kind):
    expected = json.loads((EXPECTED / f"{kind}-expected.json").read_text())
    assert expected["counts"] == {"runs": 3, "params": 9, "metric_points": 300}
    restored = _drill(restore_host(kind, "new"), "read")
    assert restored["counts"] == expected["counts"]
    assert restored["experiment"] == expected["experiment"]
    for got, want in zip(restored["runs"], expected["runs"], strict=True):
        assert got["run_id"] == want["run_id"]
        assert got["params"] == want["params"]
        assert got["metrics"] == want["metrics"], f"metric history of {want['run_name']} differs"
    assert restored == expected


@pytest.mark.parametrize("kind", KINDS)
def test_new_server_healthy_and_writes_after_restore(restore_host, kind):
    new = restore_host(kind, "new")
    service = new.service("mlflow-server")
    assert service.is_running and service.is_enabled
    probe = (
        "python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:5000/health', timeout=10).status)\""
    )
    assert new.check_output(probe).strip() == "200"
    appended = _drill(new, "append")
    assert appended["history"] == [[1, 0.5]]
    assert int(appended["experiment_id"]) > int(appended["restored_id"])


def test_sqlite_store_restored_in_place_and_old_one_kept(restore_host):
    new = restore_host("sqlite", "new")
    store = new.file("/var/lib/mlflow/mlflow.db")
    assert (store.user, store.group, store.mode) == ("mlflow", "mlflow", 0o640)
    assert new.check_output(INTEGRITY + "/var/lib/mlflow/mlflow.db").strip() == "ok"
    kept = new.check_output("ls -1 /var/lib/mlflow/ | grep '^mlflow.db.pre-restore-' || true").split()
    assert len(kept) == 1, kept
    assert new.check_output(INTEGRITY + f"/var/lib/mlflow/{kept[0]}").strip() == "ok"
    assert not new.file("/var/lib/mlflow/.mlflow.db.restore").exists


def test_postgres_restored_owned_by_mlflow_and_old_database_kept(restore_host):
    new = restore_host("pg", "new")
    query = "select count(*) from pg_tables where schemaname = 'public' and tableowner <> 'mlflow'"
    foreign = new.check_output(f'runuser -u postgres -- psql -d mlflow -tAc "{query}"')
    assert foreign.strip() == "0"
    kept = new.check_output("ls -1 /var/backups/mlops-mlflow/postgres/ | grep '^pre-restore-mlflow-' || true").split()
    assert len(kept) == 1, kept
    assert "TABLE DATA public alembic_version" in new.check_output(
        f"pg_restore --list /var/backups/mlops-mlflow/postgres/{kept[0]}"
    )
    assert not new.check_output("ls -d /tmp/*.mlops-restore 2>/dev/null || true").strip(), (
        "the copied dump was left behind"
    )
