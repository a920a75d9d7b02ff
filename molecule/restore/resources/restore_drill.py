"""Data for the restore drill, through the real mlflow client (runs inside a test host).

    python restore_drill.py write    log an experiment, 3 runs with params, tags and two metrics of
                                     50 steps each; print what the server then holds
    python restore_drill.py read     print what the server holds for that experiment
    python restore_drill.py absent   exit non-zero when the experiment exists
    python restore_drill.py append   create another experiment with a run and a metric, read it back

Prints one JSON line. The snapshot holds ids, names, statuses, times, params, user tags and every
metric point (step, value, timestamp), so two servers holding the same data print the same line.
"""

from __future__ import annotations

import json
import sys
import time

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

URI = "http://127.0.0.1:5000"
EXPERIMENT = "restore-drill"
RUNS = 3
STEPS = 50
BASE_MS = 1_700_000_000_000


def _snapshot(client: MlflowClient) -> dict | None:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    snapshot = {
        "experiment": {
            "id": experiment.experiment_id,
            "name": experiment.name,
            "lifecycle_stage": experiment.lifecycle_stage,
            "tags": {k: v for k, v in experiment.tags.items() if not k.startswith("mlflow.")},
        },
        "runs": [],
    }
    for run in sorted(runs, key=lambda r: r.info.run_name):
        metrics = {
            key: sorted([m.step, m.value, m.timestamp] for m in client.get_metric_history(run.info.run_id, key))
            for key in sorted(run.data.metrics)
        }
        snapshot["runs"].append(
            {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "status": run.info.status,
                "start_time": run.info.start_time,
                "end_time": run.info.end_time,
                "params": dict(sorted(run.data.params.items())),
                "tags": {k: v for k, v in sorted(run.data.tags.items()) if not k.startswith("mlflow.")},
                "latest": dict(sorted(run.data.metrics.items())),
                "metrics": metrics,
            }
        )
    snapshot["counts"] = {
        "runs": len(snapshot["runs"]),
        "params": sum(len(r["params"]) for r in snapshot["runs"]),
        "metric_points": sum(len(h) for r in snapshot["runs"] for h in r["metrics"].values()),
    }
    return snapshot


def write(client: MlflowClient) -> dict:
    experiment_id = client.create_experiment(EXPERIMENT, tags={"drill": "restore"})
    for index in range(RUNS):
        start = BASE_MS + index * 3_600_000
        run = client.create_run(experiment_id, start_time=start, run_name=f"run-{index}", tags={"seed": str(index)})
        run_id = run.info.run_id
        params = {"learning_rate": str(0.1 / (index + 1)), "optimizer": "adam", "batch_size": str(32 * (index + 1))}
        # loss in one batch call, accuracy one call per step: both write paths of the server.
        client.log_batch(
            run_id,
            params=[Param(key, value) for key, value in params.items()],
            metrics=[
                Metric("loss", round(1.0 / (step + 1) + index / 10, 6), start + step * 1000, step)
                for step in range(STEPS)
            ],
        )
        for step in range(STEPS):
            client.log_metric(run_id, "accuracy", round(step / STEPS + index / 100, 6), start + step * 1000, step)
        client.set_terminated(run_id, end_time=start + STEPS * 1000)
    snapshot = _snapshot(client)
    expected = {"runs": RUNS, "params": RUNS * 3, "metric_points": RUNS * 2 * STEPS}
    assert snapshot["counts"] == expected, (snapshot["counts"], expected)
    return snapshot


def append(client: MlflowClient) -> dict:
    """A new experiment (its id from the restored store's sequence) with a run and a metric."""
    restored = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = client.create_experiment(f"after-restore-{time.time_ns()}")
    run = client.create_run(experiment_id, run_name="after-restore")
    client.log_metric(run.info.run_id, "loss", 0.5, step=1)
    client.set_terminated(run.info.run_id)
    history = client.get_metric_history(run.info.run_id, "loss")
    return {
        "experiment_id": experiment_id,
        "restored_id": restored.experiment_id,
        "history": [[m.step, m.value] for m in history],
    }


def main() -> int:
    client = MlflowClient(tracking_uri=URI)
    mode = sys.argv[1]
    if mode == "write":
        result = write(client)
    elif mode == "read":
        result = _snapshot(client)
    elif mode == "absent":
        result = {"absent": client.get_experiment_by_name(EXPERIMENT) is None}
    elif mode == "append":
        result = append(client)
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(result, sort_keys=True))
    return 0 if result is not None and result.get("absent", True) else 1


if __name__ == "__main__":
    sys.exit(main())
