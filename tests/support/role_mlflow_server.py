"""Run a real `mlflow server` the way the mlflow_server role's units do, from its rendered files.

* ``shell_environ(env_file)``: the environment after ``set -a; . env_file`` in /bin/sh (what the
  start script, and systemd's EnvironmentFile with the role's quoting, hand mlflow).
* ``local_server_vars(port, home)``: the role variables of a one-worker server on 127.0.0.1:port
  with its SQLite store and artifacts under ``home``.
* ``start_server(args, environ, home, url, log)``: ``mlflow <args>`` in its own session, output
  appended to ``log``; returns once ``url``/health answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.mlflow_auth_server import _wait_healthy

MLFLOW = Path(sys.executable).parent / "mlflow"
ENV_PROBE = "import json, os; print(json.dumps(dict(os.environ)))"


def local_server_vars(port: int, home: Path) -> dict:
    return {
        "mlflow_server_host": "127.0.0.1",
        "mlflow_server_port": port,
        "mlflow_server_workers": 1,
        "mlflow_server_home": str(home),
        "mlflow_server_sqlite_path": str(home / "mlflow.db"),
        "mlflow_server_artifacts_destination": str(home / "artifacts"),
    }


def shell_environ(env_file: Path) -> dict[str, str]:
    script = 'set -a; . "$0"; set +a; exec "$1" -c "$2"'
    out = subprocess.run(
        ["/bin/sh", "-c", script, str(env_file), sys.executable, ENV_PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )
    return json.loads(out.stdout)


def start_server(args: list[str], environ: dict[str, str], home: Path, url: str, log: Path) -> subprocess.Popen:
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [str(MLFLOW), *args],
            env=environ,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=home,
            start_new_session=True,
        )
    _wait_healthy(url, proc, log)
    return proc
