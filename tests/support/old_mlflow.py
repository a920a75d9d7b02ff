"""A second venv with an older mlflow release, to write stores the current mlflow must migrate.

Use the helpers directly or the session fixture::

    from support.old_mlflow import old_mlflow_python, write_old_store

    written = write_old_store("sqlite:////tmp/x/mlflow.db")  # {"experiment_id": ..., "run_id": ...}

The venv lives in ~/.cache/mlops-mlflow/venvs/mlflow-<version>, outside the checkout so that a
fresh clone (CI's) reuses it, and is (re)built only when it is missing or its marker file does
not list exactly PINS. mlflow 2.22.1 installs but fails to
import beside SQLAlchemy 2.1, hence `sqlalchemy<2.1`. Building takes a minute or two (PyPI);
a file lock keeps concurrent test runs from building it twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

OLD_MLFLOW = "2.22.1"
PINS = [f"mlflow=={OLD_MLFLOW}", "sqlalchemy<2.1", "psycopg2-binary==2.9.13"]
VENV = Path.home() / ".cache" / "mlops-mlflow" / "venvs" / f"mlflow-{OLD_MLFLOW}"
MARKER = VENV / "pins.json"

# Written by the old mlflow: one experiment, one run with a param and three metric steps.
WRITE_PROGRAM = """
import json, os
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri=os.environ["STORE_URI"])
exp = client.create_experiment("survivor")
run = client.create_run(exp, run_name="old-run")
client.log_param(run.info.run_id, "alpha", "0.5")
for step in range(3):
    client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
client.set_terminated(run.info.run_id)
print(json.dumps({"experiment_id": exp, "run_id": run.info.run_id}))
"""


def _is_current() -> bool:
    try:
        return (VENV / "bin" / "python").exists() and json.loads(MARKER.read_text()) == PINS
    except (OSError, ValueError):
        return False


def old_mlflow_python() -> Path:
    """Return the python of the cached old-mlflow venv, building it when missing or stale."""
    if _is_current():
        return VENV / "bin" / "python"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / f".mlflow-{OLD_MLFLOW}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _is_current():  # another run may have built it while we waited
            MARKER.unlink(missing_ok=True)
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
            python = VENV / "bin" / "python"
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True)
            subprocess.run([str(python), "-c", "import mlflow.store.db.utils"], check=True)
            MARKER.write_text(json.dumps(PINS))
    return VENV / "bin" / "python"


@pytest.fixture(scope="session")
def old_mlflow() -> Path:
    """The old-mlflow venv's python (built once, cached across sessions)."""
    return old_mlflow_python()


def run_old(program: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run `program` with the old mlflow's python; return its stdout (fail the test on error)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [str(old_mlflow_python()), "-c", program, *args], capture_output=True, text=True, env=full_env, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def write_old_store(uri: str, env: dict[str, str] | None = None) -> dict:
    """Create an experiment, a run, a param and three metric steps in `uri` with the old mlflow.

    The URI goes to the old mlflow in the environment (STORE_URI), not on its command line.
    """
    return json.loads(run_old(WRITE_PROGRAM, env={**(env or {}), "STORE_URI": uri}).strip().splitlines()[-1])
