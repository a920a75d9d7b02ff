"""mlflow_server_gc_enabled, run for real: the role's gc script (mlflow-gc.py.j2, what
mlflow-gc.service runs) with the role's env file (its EnvironmentFile) purges a run deleted
through the client from a real `mlflow server` started from the role's own command line (SQLite
store, proxied local artifacts): its rows leave the database and its artifacts the destination,
while a live run and its artifacts stay. A run deleted more recently than --older-than stays, and
with the server down the script fails before touching anything (rows purged without their
proxied artifacts would orphan the objects for good).
"""

from __future__ import annotations

import json
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import find_free_port, play_results, run_playbook
from support.mlflow_auth_server import stop
from support.role_mlflow_server import shell_environ, start_server

pytestmark = pytest.mark.integration

ROLE = Path(__file__).resolve().parents[2] / "roles" / "mlflow_server"
# Tables holding a run's rows (mlflow 3.17's schema), by their run column.
RUN_TABLES = {
    "runs": "run_uuid",
    "params": "run_uuid",
    "metrics": "run_uuid",
    "tags": "run_uuid",
    "latest_metrics": "run_uuid",
}


def _render(variables: dict, tmp_path: Path) -> tuple[list[str], Path, dict[str, str]]:
    """Server argv, env file, and the gc script for two --older-than values, from the role."""
    lookups = [
        f"lookup('ansible.builtin.template', '{ROLE / 'templates' / '_server_args.j2'}')",
        f"lookup('ansible.builtin.template', '{ROLE / 'templates' / 'mlflow-server.env.j2'}')",
    ] + [
        f"lookup('ansible.builtin.template', '{ROLE / 'templates' / 'mlflow-gc.py.j2'}',"
        f" template_vars={{'mlflow_server_gc_older_than': '{older}'}})"
        for older in ("1h", "0s")
    ]
    play = {
        "name": "render the server command line, env file and gc script",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.import_role": {"name": "mlops.mlflow.mlflow_server", "tasks_from": "preflight"}}]
        + [{"ansible.builtin.debug": {"msg": "{{ " + lookup + " }}"}} for lookup in lookups],
    }
    proc = run_playbook([play], tmp_path, variables=variables, check=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    args, env_text, gc_1h, gc_0s = (r["msg"] for r in play_results(json.loads(proc.stdout)["plays"][0])[-4:])
    env_file = tmp_path / "mlflow-server.env"
    env_file.write_text(env_text)
    scripts = {}
    for older, text in (("1h", gc_1h), ("0s", gc_0s)):
        assert f"OLDER_THAN = {json.dumps(older)}" in text
        path = tmp_path / f"mlflow-gc-{older}"
        path.write_text(text)
        scripts[older] = str(path)
    return shlex.split(args), env_file, scripts


def _rows(db: Path, run_id: str) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?", (run_id,)).fetchone()[0]
            for table, column in RUN_TABLES.items()
        }


def test_gc_purges_the_deleted_run_and_keeps_the_other(tmp_path):
    from mlflow import MlflowClient

    port = find_free_port()
    home = tmp_path / "home"
    home.mkdir()
    db, artifacts = home / "mlflow.db", home / "artifacts"
    args, env_file, scripts = _render(
        {
            "mlflow_server_host": "127.0.0.1",
            "mlflow_server_port": port,
            "mlflow_server_workers": 1,
            "mlflow_server_home": str(home),
            "mlflow_server_sqlite_path": str(db),
            "mlflow_server_artifacts_destination": str(artifacts),
            "mlflow_server_gc_enabled": True,
        },
        tmp_path,
    )
    environ = shell_environ(env_file)
    assert "MLFLOW_BACKEND_STORE_URI" in environ
    url, log = f"http://127.0.0.1:{port}", tmp_path / "server.log"

    def start():
        return start_server(args, environ, home, url, log)

    def gc(older: str) -> subprocess.CompletedProcess:
        # The unit: ExecStart=/usr/local/sbin/mlflow-gc with EnvironmentFile=<env file>, in the home.
        return subprocess.run(
            [sys.executable, scripts[older]], env=environ, cwd=home, capture_output=True, text=True, timeout=120
        )

    server = start()
    try:
        client = MlflowClient(url)
        experiment = client.create_experiment("gc")
        runs = {}
        for name in ("kept", "deleted"):
            run = client.create_run(experiment, run_name=name)
            client.log_param(run.info.run_id, "p", name)
            client.log_metric(run.info.run_id, "m", 1.0)
            (tmp_path / f"{name}.txt").write_text(name)
            client.log_artifact(run.info.run_id, str(tmp_path / f"{name}.txt"))
            client.set_terminated(run.info.run_id)
            runs[name] = run.info.run_id
        assert all(run.info.artifact_uri.startswith("mlflow-artifacts:") for run in map(client.get_run, runs.values()))
        artifact_dirs = {name: artifacts / experiment / run_id / "artifacts" for name, run_id in runs.items()}
        assert all((d / f"{name}.txt").is_file() for name, d in artifact_dirs.items())
        client.delete_run(runs["deleted"])

        # Deleted just now: younger than --older-than 1h, so it stays.
        done = gc("1h")
        assert done.returncode == 0, done.stderr[-3000:]
        assert _rows(db, runs["deleted"])["runs"] == 1
        assert (artifact_dirs["deleted"] / "deleted.txt").is_file()

        # Server down: the script refuses before purging anything.
        stop(server)
        done = gc("0s")
        assert done.returncode != 0 and "does not answer" in done.stderr, done.stderr[-3000:]
        assert _rows(db, runs["deleted"])["runs"] == 1
        assert (artifact_dirs["deleted"] / "deleted.txt").is_file()

        server = start()
        done = gc("0s")
        assert done.returncode == 0, done.stderr[-3000:]
        assert runs["deleted"] in done.stdout + done.stderr
        assert _rows(db, runs["deleted"]) == dict.fromkeys(RUN_TABLES, 0)
        assert not artifact_dirs["deleted"].exists()
        kept = _rows(db, runs["kept"])
        assert kept["runs"] == kept["params"] == kept["metrics"] == 1, kept
        assert (artifact_dirs["kept"] / "kept.txt").read_text() == "kept"
        assert client.get_run(runs["kept"]).data.params == {"p": "kept"}
    finally:
        stop(server)
