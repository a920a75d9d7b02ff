"""A second venv with an older mlflow release, to write stores the current one must migrate.

Cached under .cache/venvs/ and rebuilt only when the pinned set changes. mlflow 2.22.1
installs but fails to import beside SQLAlchemy 2.1, hence the pin.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT

OLD_MLFLOW = "2.22.1"
PINS = [f"mlflow=={OLD_MLFLOW}", "sqlalchemy<2.1", "psycopg2-binary==2.9.13"]
VENV = REPO_ROOT / ".cache" / "venvs" / f"mlflow-{OLD_MLFLOW}"

WRITE_PROGRAM = """
import json, sys
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri=sys.argv[1])
exp = client.create_experiment("survivor")
run = client.create_run(exp, run_name="old-run")
client.log_param(run.info.run_id, "alpha", "0.5")
for step in range(3):
    client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
client.set_terminated(run.info.run_id)
print(json.dumps({"experiment_id": exp, "run_id": run.info.run_id}))
"""


def old_mlflow_python() -> Path:
    """Return the python of the cached old-mlflow venv, building it when missing or stale."""
    marker = VENV / "pins.json"
    python = VENV / "bin" / "python"
    if python.exists() and marker.exists() and json.loads(marker.read_text()) == PINS:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True)
    marker.write_text(json.dumps(PINS))
    return python


def write_old_store(uri: str, env: dict[str, str] | None = None) -> dict:
    """Create an experiment, a run, a param and three metric steps with the old mlflow."""
    proc = subprocess.run(
        [str(old_mlflow_python()), "-c", WRITE_PROGRAM, uri], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
