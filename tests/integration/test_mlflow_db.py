"""mlops.mlflow.mlflow_db for real: SQLite and PostgreSQL stores written by mlflow 2.22.1, migrated
to the dev venv's mlflow (3.17.x), which is the "installed mlflow" here (python = sys.executable).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time

import pytest
from support.old_mlflow import write_old_store
from support.postgres import postgres_server  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

PYTHON = sys.executable  # the dev venv: the "installed" mlflow the module migrates to

READ_BACK = """
import json, os
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri=os.environ["STORE_URI"])
exp = client.get_experiment_by_name("survivor")
run = client.get_run(os.environ["RUN_ID"])
history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss"))
print(json.dumps({"experiment_id": exp.experiment_id, "run_experiment_id": run.info.experiment_id,
                  "params": run.data.params, "history": history, "status": run.info.status}))
"""


def read_back(uri: str, run_id: str) -> dict:
    """Read the old store's experiment, run, param and metric history with the new mlflow."""
    env = dict(os.environ, STORE_URI=uri, RUN_ID=run_id)
    proc = subprocess.run([PYTHON, "-c", READ_BACK], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_survived(uri: str, written: dict) -> None:
    data = read_back(uri, written["run_id"])
    assert data["experiment_id"] == data["run_experiment_id"] == written["experiment_id"]
    assert data["params"] == {"alpha": "0.5"}
    assert data["history"] == [[0, 1.0], [1, 0.5], [2, 1.0 / 3]]
    assert data["status"] == "FINISHED"


def sqlite_revision(path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("select version_num from alembic_version").fetchone()[0]


def mode_of(path) -> str:
    return oct(os.stat(path).st_mode & 0o777)


def test_sqlite_store_from_older_mlflow(run_module, tmp_path):
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    uri = f"sqlite:///{db}"
    written = write_old_store(uri)
    old_revision = sqlite_revision(db)
    backups = tmp_path / "backups"
    args = {"backend_store_uri": uri, "python": PYTHON, "backup_dir": str(backups)}

    checked = run_module("mlflow_db", args, check=True, diff=True)
    assert checked["changed"] is True and checked["upgrade_needed"] is True and checked["upgraded"] is False
    assert checked["current_revision"] == old_revision == checked["revision"]
    assert checked["head_revision"] != old_revision
    assert checked["diff"]["before"] == f"revision: {old_revision}\n"
    assert checked["diff"]["after"] == f"revision: {checked['head_revision']}\n"
    assert sqlite_revision(db) == old_revision
    assert not backups.exists()

    applied = run_module("mlflow_db", args, diff=True)
    assert applied["changed"] is True and applied["upgraded"] is True, applied.get("msg")
    assert applied["backend"] == "sqlite" and applied["mlflow_version"].startswith("3.")
    assert applied["current_revision"] == old_revision
    assert applied["revision"] == applied["head_revision"] == sqlite_revision(db)
    backup = applied["backup_path"]
    assert os.path.dirname(backup) == str(backups) and os.path.basename(backup).startswith("mlflow-")
    assert backup.endswith(f"-{old_revision}.sqlite")
    assert sqlite_revision(backup) == old_revision
    assert mode_of(backup) == "0o600" and mode_of(backups) == "0o700"

    again = run_module("mlflow_db", args)
    assert again["changed"] is False and again["upgraded"] is False and again["backup_path"] is None
    assert again["upgrade_needed"] is False and again["current_revision"] == again["head_revision"]
    assert os.listdir(backups) == [os.path.basename(backup)]

    assert_survived(uri, written)


def test_postgres_store_from_older_mlflow(run_module, postgres_server, tmp_path):  # noqa: F811
    db = postgres_server.new_database("upgrade")
    written = write_old_store(db.uri())
    revision = "select version_num from alembic_version"
    old_revision = postgres_server.psql(revision, db.name)
    backups = tmp_path / "backups"
    args = {
        "backend_store_uri": db.uri(),
        "python": PYTHON,
        "backup_dir": str(backups),
        "pg_dump": postgres_server.pg_dump,
    }

    checked = run_module("mlflow_db", {**args, "state": "checked"})
    assert checked["changed"] is False and checked["upgrade_needed"] is True
    assert checked["current_revision"] == checked["revision"] == old_revision
    assert checked["backend"] == "postgresql"

    in_check_mode = run_module("mlflow_db", args, check=True)
    assert in_check_mode["changed"] is True and in_check_mode["upgrade_needed"] is True
    assert in_check_mode["upgraded"] is False and in_check_mode["backup_path"] is None
    assert postgres_server.psql(revision, db.name) == old_revision
    assert not backups.exists()

    applied = run_module("mlflow_db", args)
    assert applied["changed"] is True and applied["upgraded"] is True, applied.get("msg")
    assert postgres_server.psql(revision, db.name) == applied["head_revision"] == applied["revision"]
    assert applied["backup_path"].endswith(f"-{old_revision}.dump")
    assert os.path.basename(applied["backup_path"]).startswith(f"{db.name}-")
    assert mode_of(applied["backup_path"]) == "0o600" and mode_of(backups) == "0o700"
    listing = subprocess.run(
        [postgres_server.pg_restore, "--list", applied["backup_path"]], capture_output=True, text=True, check=True
    ).stdout
    assert "TABLE DATA public metrics" in listing and "TABLE DATA public alembic_version" in listing
    assert "logged_models" not in listing  # the dump is of the old schema

    again = run_module("mlflow_db", args)
    assert again["changed"] is False and again["upgraded"] is False and again["backup_path"] is None
    assert len(os.listdir(backups)) == 1

    assert_survived(db.uri(), written)
    for result in (checked, in_check_mode, applied, again):
        assert db.password not in result["_stdout"] + result["_stderr"]


def test_failing_migration_keeps_the_backup_and_the_old_revision(run_module, postgres_server, tmp_path):  # noqa: F811
    db = postgres_server.new_database("failing")
    written = write_old_store(db.uri())
    revision = "select version_num from alembic_version"
    old_revision = postgres_server.psql(revision, db.name)
    # A table a later migration wants to create: the migration fails part-way.
    postgres_server.psql(f'CREATE TABLE jobs (id int); ALTER TABLE jobs OWNER TO "{db.owner}";', db.name)
    args = {
        "backend_store_uri": db.uri(),
        "python": PYTHON,
        "backup_dir": str(tmp_path / "backups"),
        "pg_dump": postgres_server.pg_dump,
    }

    failed = run_module("mlflow_db", args)
    assert failed["failed"] is True and failed["upgraded"] is False
    assert "migration of postgresql+psycopg2://" in failed["msg"] and ":********@" in failed["msg"]
    assert f"from {old_revision} to {failed['head_revision']} failed" in failed["msg"]
    assert '"jobs" already exists' in failed["msg"]
    backup = failed["backup_path"]
    assert f"kept at {backup}" in failed["msg"] and os.path.exists(backup)
    # PostgreSQL runs the whole migration in one transaction: nothing was left half-done.
    assert postgres_server.psql(revision, db.name) == old_revision
    assert db.password not in failed["_stdout"]

    postgres_server.psql("DROP TABLE jobs;", db.name)
    fixed = run_module("mlflow_db", args)
    assert fixed["changed"] is True and fixed["upgraded"] is True, fixed.get("msg")
    assert_survived(db.uri(), written)


def test_fresh_postgres_database_gets_the_full_schema(run_module, postgres_server, tmp_path):  # noqa: F811
    db = postgres_server.new_database("fresh")
    args = {"backend_store_uri": db.uri(), "python": PYTHON, "backup_dir": str(tmp_path / "backups")}

    in_check_mode = run_module("mlflow_db", args, check=True, diff=True)
    assert in_check_mode["changed"] is True and in_check_mode["current_revision"] is None
    assert in_check_mode["diff"]["before"] == "revision: none (empty database)\n"
    assert postgres_server.psql("select count(*) from pg_tables where schemaname='public'", db.name) == "0"

    applied = run_module("mlflow_db", args)
    assert applied["changed"] is True and applied["upgraded"] is True and applied["current_revision"] is None
    assert applied["revision"] == applied["head_revision"]
    assert postgres_server.psql("select version_num from alembic_version", db.name) == applied["head_revision"]
    assert applied["backup_path"] is None and not (tmp_path / "backups").exists()
    tables = postgres_server.psql("select tablename from pg_tables where schemaname='public'", db.name).split()
    assert {"experiments", "runs", "metrics", "params", "logged_models", "jobs"} <= set(tables)

    again = run_module("mlflow_db", args)
    assert again["changed"] is False and again["upgrade_needed"] is False


def test_fresh_sqlite_file_is_created_with_the_schema(run_module, tmp_path):
    db = tmp_path / "new" / "dir" / "mlflow.db"
    args = {"backend_store_uri": f"sqlite:///{db}", "python": PYTHON, "backup_dir": str(tmp_path / "b")}
    assert run_module("mlflow_db", args, check=True)["changed"] is True
    assert not db.exists()  # the probe did not create the file
    applied = run_module("mlflow_db", args)
    assert applied["changed"] is True and sqlite_revision(db) == applied["head_revision"]
    assert run_module("mlflow_db", args)["changed"] is False


def test_store_newer_than_installed_mlflow_is_refused(run_module, postgres_server, tmp_path):  # noqa: F811
    db = postgres_server.new_database("newer")
    args = {
        "backend_store_uri": db.uri(),
        "python": PYTHON,
        "backup_dir": str(tmp_path / "b"),
        "pg_dump": postgres_server.pg_dump,
    }
    assert run_module("mlflow_db", args)["changed"] is True
    postgres_server.psql("UPDATE alembic_version SET version_num = 'ffffffffffff';", db.name)
    tables_before = postgres_server.psql("select count(*) from pg_tables where schemaname='public'", db.name)

    for state in ("upgraded", "checked"):
        result = run_module("mlflow_db", {**args, "state": state})
        assert result["failed"] is True and result["changed"] is False
        assert "is at revision ffffffffffff, which the installed mlflow 3." in result["msg"]
        assert "(is the database newer than the installed mlflow?)" in result["msg"]
    assert postgres_server.psql("select version_num from alembic_version", db.name) == "ffffffffffff"
    assert postgres_server.psql("select count(*) from pg_tables where schemaname='public'", db.name) == tables_before
    assert not (tmp_path / "b").exists()


def test_wrong_password_fails_without_leaking_it(run_module, postgres_server):  # noqa: F811
    db = postgres_server.new_database("locked")
    wrong = "wrong-Pass/word@42"
    result = run_module("mlflow_db", {"backend_store_uri": db.uri(password=wrong), "python": PYTHON})
    assert result["failed"] is True and result["changed"] is False
    assert "cannot read the backend store" in result["msg"]
    assert "password authentication failed" in result["msg"]
    output = result["_stdout"] + result["_stderr"]
    assert wrong not in output and "wrong-Pass%2Fword%4042" not in output


def test_unreachable_server_fails_quickly(run_module, free_port):
    uri = f"postgresql+psycopg2://u:secret-pw-1234@127.0.0.1:{free_port}/mlflow"
    started = time.monotonic()
    result = run_module("mlflow_db", {"backend_store_uri": uri, "python": PYTHON, "timeout": 3})
    assert result["failed"] is True and "cannot read the backend store" in result["msg"]
    assert "refused" in result["msg"].lower()
    assert time.monotonic() - started < 30
    assert "secret-pw-1234" not in result["_stdout"] + result["_stderr"]


def test_silent_server_fails_within_the_timeout(run_module):
    # A socket that accepts TCP connections (kernel backlog) but never speaks PostgreSQL.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        uri = f"postgresql+psycopg2://u:secret-pw-5678@127.0.0.1:{port}/mlflow"
        started = time.monotonic()
        result = run_module("mlflow_db", {"backend_store_uri": uri, "python": PYTHON, "timeout": 2})
        elapsed = time.monotonic() - started
    assert result["failed"] is True and "cannot read the backend store" in result["msg"]
    assert "timeout" in result["msg"].lower()
    assert elapsed < 25  # ansible-playbook and the mlflow import take a few seconds of their own
    assert "secret-pw-5678" not in result["_stdout"] + result["_stderr"]


def test_integrity_check_reads_a_real_store_and_refuses_a_damaged_or_foreign_file(run_module, tmp_path):
    """What restore.yml asks of a SQLite backup before it replaces the store: intact, and an MLflow schema."""
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    head = run_module("mlflow_db", {"backend_store_uri": uri, "python": PYTHON, "backup": False})["head_revision"]
    checked = {"backend_store_uri": uri, "python": PYTHON, "state": "checked", "integrity_check": True}
    intact = run_module("mlflow_db", checked)
    assert intact.get("failed") is not True, intact
    assert (intact["changed"], intact["current_revision"]) == (False, head)

    # Zero the page-type byte of a b-tree page in the middle: SQLite calls the file malformed.
    pages = db.stat().st_size // 4096
    assert pages > 8
    with open(db, "r+b") as handle:
        handle.seek(4096 * (pages // 2))
        handle.write(b"\0")
    damaged_bytes = db.read_bytes()
    damaged = run_module("mlflow_db", checked)
    assert damaged.get("failed") is True and damaged["changed"] is False, damaged
    assert "integrity_check" in damaged["msg"] or "malformed" in damaged["msg"], damaged["msg"]
    assert db.read_bytes() == damaged_bytes

    foreign = tmp_path / "notes.db"
    foreign.write_bytes(b"not a database at all, but long enough to look like a header " * 4)
    refused = run_module("mlflow_db", dict(checked, backend_store_uri=f"sqlite:///{foreign}"))
    assert refused.get("failed") is True and "not a database" in refused["msg"], refused
