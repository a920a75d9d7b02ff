"""The S3 404 plugin (roles/mlflow_server/files/s3_404_fix) against a real SeaweedFS.

- The class itself: a missing key raises MlflowException RESOURCE_DOES_NOT_EXIST (MLflow's
  own class lets botocore's ClientError escape), a present key downloads unchanged.
- `mlflow server --serve-artifacts` from this venv with an s3:// destination, once without the
  plugin and once with it made visible as the role installs it (its files, dist-info included,
  in a directory on the server's sys.path): a missing artifact answers 500 without it and 404
  with it, and `mlflow.pyfunc.load_model("runs:/<id>/model")` of an MLflow 3 model (whose run
  holds no model files, so the client first asks for files that are not there) loads without a
  single 500 in the server's log, i.e. without the client's retry-with-backoff.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import find_free_port
from support.mlflow_auth_server import _wait_healthy, stop
from support.s3_404_fix import (
    ENTRY_POINT,
    LOAD_MODEL_PROGRAM,
    LOG_MODEL_PROGRAM,
    PLUGIN_DIR,
    PROXIED_CLIENT_ENV,
    plugin_on_path,
    s3_server_env,
    status_count,
)
from support.s3_servers import seaweedfs_s3  # noqa: F401

pytestmark = pytest.mark.integration

MLFLOW = Path(sys.executable).parent / "mlflow"
BUCKET = "s3-404-fix"


@pytest.fixture(scope="module")
def bucket(seaweedfs_s3):  # noqa: F811
    seaweedfs_s3.client().create_bucket(Bucket=BUCKET)
    yield seaweedfs_s3
    seaweedfs_s3.empty_and_delete(BUCKET)


def _plugin_module():
    spec = importlib.util.spec_from_file_location("mlops_mlflow_s3_404", PLUGIN_DIR / "mlops_mlflow_s3_404.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plugin_maps_a_missing_key_and_downloads_a_present_one(bucket, monkeypatch, tmp_path):
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository as Builtin

    for name, value in s3_server_env(bucket.endpoint_url, bucket.access_key, bucket.secret_key, bucket.region).items():
        monkeypatch.setenv(name, value)
    prefix = f"unit-{uuid.uuid4().hex[:8]}"
    bucket.client().put_object(Bucket=BUCKET, Key=f"{prefix}/present.txt", Body=b"hello artifacts")
    uri = f"s3://{BUCKET}/{prefix}"
    plugin = _plugin_module().S3ArtifactRepository(uri)
    assert isinstance(plugin, Builtin)

    got = plugin.download_artifacts("present.txt", str(tmp_path))
    assert Path(got).read_bytes() == b"hello artifacts"

    with pytest.raises(MlflowException) as missing:
        plugin.download_artifacts("missing.txt", str(tmp_path))
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert "missing.txt" in missing.value.message

    # The cause: MLflow's own class reports the same miss as an internal error (a 500 in the server).
    with pytest.raises(MlflowException) as builtin_missing:
        Builtin(uri).download_artifacts("missing.txt", str(tmp_path))
    assert builtin_missing.value.error_code == "INTERNAL_ERROR"

    # Other S3 errors are not turned into "does not exist": a wrong secret still fails as before.
    wrong = _plugin_module().S3ArtifactRepository(
        uri, access_key_id=bucket.access_key, secret_access_key="wrong-secret-key-000000"
    )
    with pytest.raises(Exception) as denied:  # whatever the parent raises, unchanged
        wrong._download_file("present.txt", str(tmp_path / "denied.txt"))
    assert type(denied.value).__name__ == "ClientError", denied.value


def _start_server(workdir: Path, s3, *, plugin: bool) -> tuple[str, subprocess.Popen, Path]:
    workdir.mkdir()
    port = find_free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "PYTHONPATH"))}
    env |= s3_server_env(s3.endpoint_url, s3.access_key, s3.secret_key, s3.region)
    env |= {"HOME": str(workdir), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # as the role's env file
    if plugin:
        env["PYTHONPATH"] = str(plugin_on_path(workdir / "site"))
    args = [
        str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination", f"s3://{BUCKET}/{workdir.name}", "--serve-artifacts",
    ]  # fmt: skip
    log = workdir / "server.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            args, env=env, cwd=workdir, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log, timeout=180)
    except RuntimeError:
        stop(proc)
        raise
    return url, proc, log


@pytest.fixture(scope="module")
def servers(bucket, tmp_path_factory):
    """{"builtin": (url, log), "plugin": (url, log)}: the same server, without and with the plugin."""
    root = tmp_path_factory.mktemp("s3-404-servers")
    started = {}
    try:
        for name in ("builtin", "plugin"):
            url, proc, log = _start_server(root / name, bucket, plugin=name == "plugin")
            started[name] = (url, proc, log)
        yield {name: (url, log) for name, (url, _, log) in started.items()}
    finally:
        for _, proc, _ in started.values():
            stop(proc)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _python(program: str, *args: str, timeout: float) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))} | PROXIED_CLIENT_ENV
    proc = subprocess.run(
        [sys.executable, "-c", program, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_server_answers_a_missing_artifact_with_404_only_with_the_plugin(servers):
    path = "/api/2.0/mlflow-artifacts/artifacts/no/such/file.txt"
    builtin_url, _ = servers["builtin"]
    status, body = _get(builtin_url + path)
    assert status == 500 and "INTERNAL_ERROR" in body, (status, body)
    plugin_url, log = servers["plugin"]
    status, body = _get(plugin_url + path)
    assert status == 404 and "RESOURCE_DOES_NOT_EXIST" in body, (status, body)
    assert "Failure attempting to register artifact repository" not in log.read_text()


def test_server_resolves_s3_to_the_plugin(servers):
    """The server's own interpreter (same PYTHONPATH as the server) takes s3:// from the plugin."""
    _, log = servers["plugin"]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(log.parent / "site")}
    code = (
        "from mlflow.store.artifact.artifact_repository_registry import get_registered_artifact_repositories as r; "
        "c = r()['s3']; print(c.__module__ + ':' + c.__qualname__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == ENTRY_POINT


def test_model_loads_without_retries_through_the_plugin(servers):
    url, log = servers["plugin"]
    run_id = _python(LOG_MODEL_PROGRAM, url, timeout=300)["run_id"]
    before = log.read_text()
    # Without the plugin this load waits through the client's retries of each 500 (minutes);
    # the timeout only keeps a regression from hanging the suite.
    loaded = _python(LOAD_MODEL_PROGRAM, url, run_id, timeout=200)
    assert loaded["prediction"] == [1, 2]
    during = log.read_text()[len(before) :]
    assert status_count(during, 200) > 0, during[-3000:]  # the log does show the load's requests
    assert status_count(during, 404) > 0, "the load asked for a file the run does not hold"
    assert status_count(during, 500) == 0, during[-3000:]
