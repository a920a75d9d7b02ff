"""Real-client smoke check for a converged mlflow server (runs inside the test host).

    python mlflow_smoke.py write TAG [--uri URI]   log an experiment, run, params, stepped
                                                  metrics, an artifact (SMOKE_ARTIFACT_MB, 10 MB
                                                  by default) and a model version
    python mlflow_smoke.py read TAG [--uri URI]    read all of it back and compare

Prints one JSON line; exits non-zero on any mismatch. Credentials for a proxied
server come from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile

from mlflow.tracking import MlflowClient

ARTIFACT_MB = int(os.environ.get("SMOKE_ARTIFACT_MB", "10"))
ARTIFACT_BYTES = ARTIFACT_MB * 1024 * 1024
PARAMS = {"learning_rate": "0.01", "optimizer": "adam"}
METRIC_STEPS = [(step, 1.0 / (step + 1)) for step in range(5)]


def _artifact(tag: str) -> bytes:
    seed = hashlib.sha256(tag.encode()).digest()
    block = b"".join(hashlib.sha256(seed + bytes([i])).digest() for i in range(256))
    return (block * (ARTIFACT_BYTES // len(block) + 1))[:ARTIFACT_BYTES]


def write(client: MlflowClient, tag: str) -> dict:
    experiment_id = client.create_experiment(f"smoke-{tag}")
    run = client.create_run(experiment_id, run_name=f"run-{tag}")
    run_id = run.info.run_id
    for key, value in PARAMS.items():
        client.log_param(run_id, key, value)
    for step, value in METRIC_STEPS:
        client.log_metric(run_id, "loss", value, step=step)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "weights.bin")
        with open(path, "wb") as handle:
            handle.write(_artifact(tag))
        client.log_artifact(run_id, path, artifact_path="model")
    client.set_terminated(run_id)
    client.create_registered_model(f"model-{tag}")
    version = client.create_model_version(f"model-{tag}", source=f"{run.info.artifact_uri}/model", run_id=run_id)
    return {"experiment_id": experiment_id, "run_id": run_id, "model_version": version.version}


def read(client: MlflowClient, tag: str) -> dict:
    experiment = client.get_experiment_by_name(f"smoke-{tag}")
    assert experiment is not None, f"experiment smoke-{tag} is missing"
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, f"expected one run, found {len(runs)}"
    run = runs[0]
    assert run.data.params == PARAMS, run.data.params
    history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss"))
    assert history == METRIC_STEPS, history
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run.info.run_id, "model/weights.bin", tmp)
        with open(local, "rb") as handle:
            data = handle.read()
    assert hashlib.sha256(data).digest() == hashlib.sha256(_artifact(tag)).digest(), "artifact differs"
    versions = client.search_model_versions(f"name='model-{tag}'")
    assert [v.run_id for v in versions] == [run.info.run_id], versions
    return {"run_id": run.info.run_id, "artifact_bytes": len(data), "model_versions": len(versions)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["write", "read", "both"])
    parser.add_argument("tag")
    parser.add_argument("--uri", default="http://127.0.0.1:5000")
    args = parser.parse_args()
    client = MlflowClient(tracking_uri=args.uri, registry_uri=args.uri)
    result: dict = {"mode": args.mode, "tag": args.tag}
    try:
        if args.mode in ("write", "both"):
            result["written"] = write(client, args.tag)
        if args.mode in ("read", "both"):
            result["read"] = read(client, args.tag)
    except AssertionError as exc:
        result["error"] = str(exc)
        print(json.dumps(result))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
