"""mlflow_server's database step (tasks/database.yml) for real, on a SQLite store one schema
revision behind the dev venv's mlflow (its own alembic scripts stop one short of head):

- mlflow_server_db_backup_dir: the copy taken before the migration lands there;
- mlflow_server_db_backup: false migrates without a copy.

The server is "stopped" and "restarted" through the cron start script, here a stub that logs its
calls, so the step runs whole (stop, migrate, hand over the file, restart handler).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import play_results, run_playbook

pytestmark = pytest.mark.integration

BEHIND = """
import sys, sqlalchemy
from alembic import command
from alembic.script import ScriptDirectory
from mlflow.store.db.utils import InitialBase, _get_alembic_config
url = sys.argv[1]
engine = sqlalchemy.create_engine(url)
InitialBase.metadata.create_all(engine)
config = _get_alembic_config(url)
script = ScriptDirectory.from_config(config)
previous = script.get_revision(script.get_current_head()).down_revision
with engine.begin() as connection:
    config.attributes["connection"] = connection
    command.upgrade(config, previous)
print(previous)
"""


def _store_one_behind(db: Path) -> str:
    db.parent.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-c", BEHIND, f"sqlite:///{db}"], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def _revision(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("select version_num from alembic_version").fetchone()[0]


def _database_step(tmp_path: Path, **role_vars) -> tuple[Path, list[dict], list[str], str]:
    db = tmp_path / "home" / "mlflow.db"
    before = _store_one_behind(db)
    calls = tmp_path / "start-script.calls"
    stub = tmp_path / "mlflow-server-start"
    stub.write_text(f'#!/bin/sh\necho "$1" >> {calls}\necho "$1"ped\n')
    stub.chmod(0o755)
    variables = {
        "mlflow_server_home": str(tmp_path / "home"),
        "mlflow_server_sqlite_path": str(db),
        "mlflow_server_user": "root",
        "mlflow_server_group": "root",
        "mlflow_server_service_manager": "cron",
        "_mlflow_server_start_script": str(stub),
        "_mlflow_server_python": sys.executable,
        **role_vars,
    }
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.import_role": {"name": "mlops.mlflow.mlflow_server", "tasks_from": "database"}}],
    }
    proc = run_playbook([play], tmp_path, variables=variables)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert _revision(db) != before
    return db, play_results(json.loads(proc.stdout)["plays"][0]), calls.read_text().split(), before


def test_backup_lands_in_the_backup_dir(tmp_path):
    backups = tmp_path / "db-dumps"
    _, _, calls, before = _database_step(tmp_path, mlflow_server_db_backup_dir=str(backups))
    assert calls == ["stop", "restart"]
    (copy,) = os.listdir(backups)
    assert copy.endswith(f"-{before}.sqlite"), copy
    assert _revision(backups / copy) == before


def test_backup_off_takes_no_copy(tmp_path):
    backups = tmp_path / "db-dumps"
    _, results, calls, _ = _database_step(
        tmp_path, mlflow_server_db_backup=False, mlflow_server_db_backup_dir=str(backups)
    )
    assert calls == ["stop", "restart"]
    assert not backups.exists()
    migrated = [r for r in results if "upgraded" in r]
    assert migrated and migrated[-1]["backup_path"] is None, migrated
