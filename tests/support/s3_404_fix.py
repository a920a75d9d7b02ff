"""The S3 404 plugin roles/mlflow_server ships (files/s3_404_fix/), for tests and benches.

The directory holds the plugin as installed files: the module and its dist-info (METADATA,
entry_points.txt, RECORD, INSTALLER, top_level.txt). The role copies it into the server venv's
site-packages; tests make it visible the same way by putting a copy of the directory on
PYTHONPATH (importlib.metadata finds dist-info directories on every sys.path entry).

RECORD lists every file with its sha256; after editing a file, rewrite it with
`.venv/bin/python tests/support/s3_404_fix.py` (tests/test_mlflow_s3_404_fix.py checks it).
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "roles" / "mlflow_server" / "files" / "s3_404_fix"
DIST_INFO = "mlops_mlflow_s3_404-1.0.0.dist-info"
ENTRY_POINT = "mlops_mlflow_s3_404:S3ArtifactRepository"


def record_text(root: Path = PLUGIN_DIR) -> str:
    """RECORD as the wheel spec writes it: path,sha256=<urlsafe b64, no padding>,size; itself unhashed."""
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        rel = path.relative_to(root).as_posix()
        if rel == f"{DIST_INFO}/RECORD":
            continue
        data = path.read_bytes()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{rel},sha256={digest},{len(data)}")
    lines.append(f"{DIST_INFO}/RECORD,,")
    return "\n".join(lines) + "\n"


def plugin_on_path(directory: Path) -> Path:
    """Copy the plugin's files into `directory` (a PYTHONPATH entry); return it."""
    shutil.copytree(PLUGIN_DIR, directory, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return directory


# Logs a tiny pyfunc model (MLflow 3: a LoggedModel linked to a run) and prints the run id.
# The class lives in __main__, so cloudpickle stores it by value and any process can load it.
LOG_MODEL_PROGRAM = """
import json, sys
import mlflow

class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input

mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("s3-404")
with mlflow.start_run() as run:
    mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=["mlflow"])
print(json.dumps({"run_id": run.info.run_id}))
"""

# The client of a server whose artifact store it cannot reach itself (our stack: SeaweedFS on the
# server's loopback, nginx the only way in) must keep its downloads proxied: mlflow 3.17's client
# otherwise asks the server for presigned S3 URLs (the server advertises multipart downloads for
# S3) and fetches from the store directly. Proxied downloads are where the server's 500 bites.
PROXIED_CLIENT_ENV = {"MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false"}

# Loads runs:/<run id>/model the way a user does; prints the seconds load_model took
# (mlflow imported before the clock starts) and the prediction for [1, 2].
LOAD_MODEL_PROGRAM = """
import json, sys, time
import mlflow.pyfunc

mlflow.set_tracking_uri(sys.argv[1])
start = time.perf_counter()
model = mlflow.pyfunc.load_model(f"runs:/{sys.argv[2]}/model")
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "prediction": list(model.predict([1, 2]))}))
"""


def s3_server_env(endpoint_url: str, access_key: str, secret_key: str, region: str) -> dict[str, str]:
    """What the role's env file gives the server for an S3 artifacts destination."""
    return {
        "MLFLOW_S3_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": region,
    }


def status_count(log_text: str, status: int) -> int:
    """Requests the server answered with `status`, from uvicorn's access log lines."""
    return len(re.findall(rf'" {status}\b', log_text))


if __name__ == "__main__":
    (PLUGIN_DIR / DIST_INFO / "RECORD").write_text(record_text())
    print(f"wrote {PLUGIN_DIR / DIST_INFO / 'RECORD'}", file=sys.stderr)
