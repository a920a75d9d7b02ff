"""Total loss of a SQLite mlflow host, restored from the off-host backup target alone (issue #20).

As molecule/hostloss, for one mlflow server on SQLite with MLflow's auth app (basic_auth.db) and a
local artifact directory: clients log continuously; the stores job (every 15 minutes) and the
artifacts job (hourly) run once as their timers would; the host is destroyed while the clients
write; a new host is converged and restored with mlops.mlflow.restore -e mlops_restore_from=target.
Everything acknowledged before the stores job started is back, equal, nothing after it finished;
artifacts logged before the artifacts job are back byte for byte. Then a copy before a mistake:
an experiment purged by mistake comes back with mlops_restore_time before the purge (restore.yml hands
it to the backup role as backup_restore_time: the newest copy at or before it).
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))
from hostloss_drill import Drill, Workload, artifacts_back, history

DRILL = Drill(
    host="mlops-hostloss-lite",
    address="10.231.41.10",
    alice=("alice", "lite-alice-pass-0001"),
    rita=("rita", "lite-rita-pass-00001"),
    admin=("admin", "lite-admin-pass-0001"),
)
TAG = time.strftime("%H%M%S")
STATE: dict = {}


@pytest.fixture(scope="module")
def client():
    return DRILL.client()


def test_the_users_converges_left_nothing_to_change(user_runs):
    DRILL.converged_clean(user_runs)


def test_total_host_loss_then_restore_from_the_target_alone(client, user_runs, tmp_path):
    # Rita's grant is in basic_auth.db here, a store of its own.
    experiment_id, model_run_id, version = DRILL.seed(client, TAG, tmp_path)

    workload = Workload(client, experiment_id, tmp_path)
    workload.thread.start()
    time.sleep(25)
    stores_started = time.time()
    DRILL.on_host("systemctl", "start", "mlops-backup@stores.service")
    stores_done = time.time()
    artifacts_started = time.time()
    DRILL.on_host("systemctl", "start", "mlops-backup@artifacts.service")
    time.sleep(20)
    lost_at, converge_s, restore_s = DRILL.lose_and_restore(workload, user_runs, refused=["stores", "artifacts"])

    runs = {run.info.run_id: run for run in client.search_runs([experiment_id], max_results=5000)}
    acked_runs = [run_id for _t, (run_id,) in workload.acked("run", lost_at)]
    histories = {run_id: history(client, run_id) for run_id in acked_runs if run_id in runs}

    def back(payload: tuple) -> bool:
        return histories.get(payload[0], {}).get(payload[1]) == payload[2]

    # The copy is a snapshot taken while the stores job ran: all before it, none after it.
    assert [p for _t, p in workload.acked("metric", stores_started) if not back(p)] == []
    assert [p for _t, p in workload.acked("metric", lost_at, after=stores_done) if back(p)] == []
    assert {run_id for _t, (run_id,) in workload.acked("run", stores_started)} <= set(runs)
    for _t, (run_id, key, value) in workload.acked("param", stores_started):
        assert runs[run_id].data.params[key] == value
    restored, _missing = artifacts_back(client, workload.acked("artifact", artifacts_started), tmp_path)
    assert restored == len(workload.acked("artifact", artifacts_started)) > 0
    DRILL.seeded_back(client, TAG, experiment_id, model_run_id, version)

    metrics = workload.acked("metric", lost_at)
    lost = [p for _t, p in metrics if not back(p)]
    report = {
        "layout": "sqlite",
        "lost_at": datetime.datetime.fromtimestamp(lost_at, datetime.UTC).isoformat(timespec="seconds"),
        "runs_acknowledged": len(acked_runs),
        "runs_restored": len(histories),
        "metric_steps_acknowledged": len(metrics),
        "metric_steps_lost": len(lost),
        "metrics_rpo_s": round(lost_at - stores_started, 1) if lost else 0.0,
        "artifacts_acknowledged": len(workload.acked("artifact", lost_at)),
        "artifacts_restored": artifacts_back(client, workload.acked("artifact", lost_at), tmp_path)[0],
        "artifacts_rpo_s": round(lost_at - artifacts_started, 1),
        "new_host_converge_s": round(converge_s),
        "restore_s": round(restore_s),
    }
    DRILL.report.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    STATE.update(experiment_id=experiment_id, runs=len(runs))


def test_the_restored_host_backs_up_again():
    DRILL.on_host("systemctl", "start", "mlops-backup@stores.service", "mlops-backup@artifacts.service")


def test_a_copy_before_the_mistake_brings_back_a_purged_experiment(client, user_runs):
    assert STATE, "the host-loss drill did not run"
    experiment_id = client.create_experiment(f"precious-{TAG}")
    run_id = client.create_run(experiment_id, run_name="keep-me").info.run_id
    for step in range(5):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    DRILL.on_host("systemctl", "start", "mlops-backup@stores.service")
    time.sleep(2)
    before = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S+00")
    time.sleep(2)
    client.delete_experiment(experiment_id)  # by mistake
    DRILL.on_host("systemctl", "start", "mlflow-gc.service")  # and purged for good
    assert client.get_experiment_by_name(f"precious-{TAG}") is None
    DRILL.on_host("systemctl", "start", "mlops-backup@stores.service")  # the next copy has it gone

    user_runs.playbook(
        "restore-before",
        "mlops.mlflow.restore",
        "-e",
        json.dumps({"mlops_restore_from": "target", "mlops_restore_time": before}),
    )
    DRILL.wait_for_mlflow()
    precious = client.get_experiment_by_name(f"precious-{TAG}")
    assert precious is not None and precious.lifecycle_stage == "active"
    assert history(client, run_id) == {step: 1.0 / (step + 1) for step in range(5)}
    assert len(client.search_runs([STATE["experiment_id"]], max_results=5000)) == STATE["runs"]
