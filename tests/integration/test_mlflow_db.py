"""mlops.mlflow.mlflow_db against real stores: SQLite and PostgreSQL written by an older mlflow."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from support.old_mlflow import write_old_store
from support.postgres import postgres_server  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

PYTHON = sys.executable  # the dev venv: the "installed" mlflow the module migrates to

READ_BACK = """
import json, sys
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri=sys.argv[1])
exp = client.get_experiment_by_name("survivor")
run = client.get_run(sys.argv[2])
history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss"))
print(json.dumps({"experiment": exp.experiment_id, "params": run.data.params, "history": history}))
"""


def read_back(uri: str, run_id: str) -> dict:
    import json

    proc = subprocess.run([PYTHON, "-c", READ_BACK, uri, run_id], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sqlite_revision(path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("select version_num from alembic_version").fetchone()[0]


def test_sqlite_store_from_older_mlflow(run_module, tmp_path):
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    uri = f"sqlite:///{db}"
    written = write_old_store(uri)
    old_revision = sqlite_revision(db)
    args = {"backend_store_uri": uri, "python": PYTHON, "backup_dir": str(tmp_path / "backups")}

    checked = run_module("mlflow_db", args, check=True, diff=True)
    assert checked["changed"] is True and checked["upgrade_needed"] is True
    assert checked["current_revision"] == old_revision != checked["head_revision"]
    assert sqlite_revision(db) == old_revision
    assert not (tmp_path / "backups").exists()

    applied = run_module("mlflow_db", args)
    assert applied["changed"] is True and applied["upgraded"] is True
    assert applied["revision"] == applied["head_revision"] == sqlite_revision(db)
    backup = applied["backup_path"]
    assert backup.endswith(f"-{old_revision}.sqlite")
    assert sqlite_revision(backup) == old_revision

    again = run_module("mlflow_db", args)
    assert again["changed"] is False and again["upgraded"] is False and again["backup_path"] is None

    data = read_back(uri, written["run_id"])
    assert data["params"] == {"alpha": "0.5"}
    assert data["history"] == [[0, 1.0], [1, 0.5], [2, 1.0 / 3]]


def test_postgres_store_from_older_mlflow(run_module, postgres_server, tmp_path):  # noqa: F811
    postgres_server.create_database("upgrade_me", "upgrader", "pg-secret-0001")
    uri = postgres_server.uri("upgrade_me", "upgrader", "pg-secret-0001")
    written = write_old_store(uri)
    old_revision = postgres_server.psql("select version_num from alembic_version", "upgrade_me")
    args = {
        "backend_store_uri": uri,
        "python": PYTHON,
        "backup_dir": str(tmp_path / "backups"),
        "pg_dump": postgres_server.pg_dump,
    }

    checked = run_module("mlflow_db", {**args, "state": "checked"})
    assert checked["changed"] is False and checked["upgrade_needed"] is True

    in_check_mode = run_module("mlflow_db", args, check=True)
    assert in_check_mode["changed"] is True
    assert postgres_server.psql("select version_num from alembic_version", "upgrade_me") == old_revision

    applied = run_module("mlflow_db", args)
    assert applied["upgraded"] is True
    assert "pg-secret-0001" not in applied["_stdout"]
    listing = subprocess.run(
        [postgres_server.pg_restore, "--list", applied["backup_path"]], capture_output=True, text=True, check=True
    ).stdout
    assert "TABLE DATA public metrics" in listing
    assert postgres_server.psql("select version_num from alembic_version", "upgrade_me") == applied["head_revision"]

    again = run_module("mlflow_db", args)
    assert again["changed"] is False
    assert read_back(uri, written["run_id"])["params"] == {"alpha": "0.5"}


def test_fresh_postgres_database_gets_the_full_schema(run_module, postgres_server, tmp_path):  # noqa: F811
    postgres_server.create_database("fresh", "freshuser", "pg-secret-0002")
    args = {
        "backend_store_uri": postgres_server.uri("fresh", "freshuser", "pg-secret-0002"),
        "python": PYTHON,
        "backup_dir": str(tmp_path / "backups"),
    }
    applied = run_module("mlflow_db", args)
    assert applied["changed"] is True and applied["current_revision"] is None
    assert applied["revision"] == applied["head_revision"]
    assert applied["backup_path"] is None
    tables = postgres_server.psql("select count(*) from pg_tables where schemaname='public'", "fresh")
    assert int(tables) > 20
    assert run_module("mlflow_db", args)["changed"] is False


def test_store_newer_than_installed_mlflow_is_refused(run_module, tmp_path):
    db = tmp_path / "newer.db"
    uri = f"sqlite:///{db}"
    assert run_module("mlflow_db", {"backend_store_uri": uri, "python": PYTHON})["changed"] is True
    with sqlite3.connect(db) as conn:
        conn.execute("update alembic_version set version_num = 'ffffffffffff'")
    before = db.read_bytes()
    result = run_module("mlflow_db", {"backend_store_uri": uri, "python": PYTHON, "backup_dir": str(tmp_path / "b")})
    assert result["failed"] is True
    assert "ffffffffffff" in result["msg"] and "newer" in result["msg"]
    assert db.read_bytes() == before
    assert not (tmp_path / "b").exists()


def test_wrong_password_fails_without_leaking_it(run_module, postgres_server):  # noqa: F811
    postgres_server.create_database("locked", "lockeduser", "pg-secret-0003")
    uri = postgres_server.uri("locked", "lockeduser", "wrong-password-xyz")
    result = run_module("mlflow_db", {"backend_store_uri": uri, "python": PYTHON})
    assert result["failed"] is True
    assert "password authentication failed" in result["msg"]
    assert "wrong-password-xyz" not in result["_stdout"] + result["_stderr"]


def test_unreachable_server_fails_within_the_timeout(run_module, free_port):
    import time

    uri = f"postgresql+psycopg2://u:secret-pw-1234@127.0.0.1:{free_port}/mlflow"
    started = time.monotonic()
    result = run_module("mlflow_db", {"backend_store_uri": uri, "python": PYTHON, "timeout": 3})
    assert result["failed"] is True and "refused" in result["msg"].lower()
    assert time.monotonic() - started < 30
    assert "secret-pw-1234" not in result["_stdout"]
