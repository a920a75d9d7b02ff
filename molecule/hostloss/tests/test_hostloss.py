"""Total loss of the mlflow host, restored from the off-host backup target alone (issue #20).

The user's runs (resources/user_path.yml) converged mlops-hostloss with mlops_backup_target_* set.
Here, from the controller, through nginx, with the real mlflow client:

1. a registered model, an experiment and a permission granted by the auth app's admin are set up;
   clients then log runs, params, metric histories and artifacts continuously;
2. the backup jobs run once as their timers would (the SQLite stores, then the artifacts); the
   clients keep logging for longer than archive_timeout;
3. the host is destroyed while the clients write: the container and its file system are gone;
4. a new host of the same name is created (the user's own provisioning trusts their CA again),
   mlops.mlflow.site converges it, and mlops.mlflow.restore -e mlops_restore_from=target restores
   it; before that, the new host's backup jobs refuse to touch the target;
5. every run, param, metric step, artifact checksum, the model version and the permission (the
   auth app keeps it in the PostgreSQL database) are
   compared with what the clients were told was stored. The metrics lost are a suffix of what was
   logged, at most 75 s (archive_timeout 60 s, then the push); artifacts logged before the last
   artifacts job are all back. The numbers go to hostloss-report.json in the ephemeral directory.

Then a point in time: an experiment deleted and purged by mistake comes back with a restore to a
time before the deletion.
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
    host="mlops-hostloss",
    address="10.231.40.10",
    alice=("alice", "hostloss-alice-pass-1"),
    rita=("rita", "hostloss-rita-pass-01"),
    admin=("admin", "hostloss-admin-pass-01"),
)
# archive_timeout (the default 60 s) plus the time pgBackRest takes to push the segment.
METRICS_RPO_LIMIT = 75
PGBACKREST = ["runuser", "-u", "postgres", "--", "pgbackrest", "--config=/etc/pgbackrest.conf", "--stanza=mlflow"]
# Names of this run (a verify run again on a kept host starts afresh).
TAG = time.strftime("%H%M%S")
STATE: dict = {}


@pytest.fixture(scope="module")
def client():
    return DRILL.client()


def _backups() -> list[str]:
    info = json.loads(DRILL.on_host(*PGBACKREST, "--output=json", "info").stdout)
    assert info[0]["status"]["code"] == 0 and info[0]["archive"][0]["max"], info
    return [backup["type"] for backup in info[0]["backup"]]


def test_the_users_converges_left_nothing_to_change(user_runs):
    DRILL.converged_clean(user_runs)


def test_the_database_has_a_base_backup_and_ships_its_wal_from_the_first_converge():
    assert _backups() == ["full"]
    archive_timeout = DRILL.on_host("runuser", "-u", "postgres", "--", "psql", "-tAc", "show archive_timeout")
    assert archive_timeout.stdout.strip() == "1min"


def test_total_host_loss_then_restore_from_the_target_alone(client, user_runs, tmp_path):
    # Rita's grant is in the PostgreSQL database with the runs: pgBackRest ships the auth app's users.
    experiment_id, model_run_id, version = DRILL.seed(client, TAG, tmp_path)

    workload = Workload(client, experiment_id, tmp_path)
    workload.thread.start()
    time.sleep(30)
    # The artifacts job its timer runs hourly, once, while the clients write.
    artifacts_started = time.time()
    DRILL.on_host("systemctl", "start", "mlops-backup@artifacts.service")
    time.sleep(METRICS_RPO_LIMIT + 15)
    # Until the restore, the new host's jobs refuse the target: its empty store stays off the backups.
    lost_at, converge_s, restore_s = DRILL.lose_and_restore(workload, user_runs, refused=["artifacts"])

    runs = {run.info.run_id: run for run in client.search_runs([experiment_id], max_results=5000)}
    metrics = workload.acked("metric", lost_at)
    acked_runs = [run_id for _t, (run_id,) in workload.acked("run", lost_at)]
    histories = {run_id: history(client, run_id) for run_id in acked_runs if run_id in runs}
    missing = [(t, p) for t, p in metrics if histories.get(p[0], {}).get(p[1]) != p[2]]
    # What is lost is the tail: every step acknowledged before the first missing one is back, equal.
    first_missing = min((t for t, _p in missing), default=lost_at)
    assert len(missing) == len([1 for t, _p in metrics if t >= first_missing])
    rpo = lost_at - first_missing
    assert rpo <= METRICS_RPO_LIMIT, f"{rpo:.1f} s of metrics lost ({len(missing)} steps)"
    assert {run_id for _t, (run_id,) in workload.acked("run", first_missing)} <= set(runs)
    for _t, (run_id, key, value) in workload.acked("param", first_missing):
        assert runs[run_id].data.params[key] == value

    # Artifacts: every one logged before the last artifacts job is back, byte for byte.
    before_job = workload.acked("artifact", artifacts_started)
    assert artifacts_back(client, before_job, tmp_path) == (len(before_job), 0) and before_job
    after_job = workload.acked("artifact", lost_at, after=artifacts_started)
    after_restored, after_missing = artifacts_back(client, after_job, tmp_path)

    DRILL.seeded_back(client, TAG, experiment_id, model_run_id, version)

    report = {
        "layout": "postgresql",
        "lost_at": datetime.datetime.fromtimestamp(lost_at, datetime.UTC).isoformat(timespec="seconds"),
        "runs_acknowledged": len(acked_runs),
        "runs_restored": len(histories),
        "metric_steps_acknowledged": len(metrics),
        "metric_steps_lost": len(missing),
        "metrics_rpo_s": round(rpo, 1),
        "artifacts_acknowledged": len(before_job) + len(after_job),
        "artifacts_restored": len(before_job) + after_restored,
        "artifacts_logged_after_the_last_artifacts_job": len(after_job),
        "artifacts_rpo_s": round(lost_at - artifacts_started, 1) if after_missing else 0.0,
        "new_host_converge_s": round(converge_s),
        "restore_s": round(restore_s),
    }
    DRILL.report.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    STATE.update(experiment_id=experiment_id, runs=len(runs))


def test_the_restored_host_backs_up_again():
    DRILL.on_host("systemctl", "start", "mlops-backup@artifacts.service")
    # The old host's full backup, and the restored cluster's own.
    assert _backups() == ["full", "full"]


def test_point_in_time_brings_back_an_experiment_purged_by_mistake(client, user_runs):
    assert STATE, "the host-loss drill did not run"
    experiment_id = client.create_experiment(f"precious-{TAG}")
    run_id = client.create_run(experiment_id, run_name="keep-me").info.run_id
    for step in range(5):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    client.log_param(run_id, "kept", "yes")
    time.sleep(2)
    before = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S+00")
    time.sleep(2)
    client.delete_experiment(experiment_id)  # by mistake
    DRILL.on_host("systemctl", "start", "mlflow-gc.service")  # and purged for good
    assert client.get_experiment_by_name(f"precious-{TAG}") is None
    # The deletion's WAL in the repository now (archive_timeout would within a minute).
    DRILL.on_host(*PGBACKREST, "check")

    user_runs.playbook(
        "restore-pitr",
        "mlops.mlflow.restore",
        "-e",
        json.dumps({"mlops_restore_from": "target", "mlops_restore_time": before}),
    )
    DRILL.wait_for_mlflow()
    precious = client.get_experiment_by_name(f"precious-{TAG}")
    assert precious is not None and precious.lifecycle_stage == "active"
    assert client.get_run(run_id).data.params == {"kept": "yes"}
    assert history(client, run_id) == {step: 1.0 / (step + 1) for step in range(5)}
    # The drill's restored runs are all still there.
    assert len(client.search_runs([STATE["experiment_id"]], max_results=5000)) == STATE["runs"]
