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
5. every run, param, metric step, artifact checksum, the model version and the permission are
   compared with what the clients were told was stored. The metrics lost are a suffix of what was
   logged, at most 75 s (archive_timeout 60 s, then the push); artifacts logged before the last
   artifacts job are all back. The numbers go to hostloss-report.json in the ephemeral directory.

Then a point in time: an experiment deleted and purged by mistake comes back with a restore to a
time before the deletion.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
import urllib3

HOST = "mlops-hostloss"
URI = "https://10.231.40.10"
ALICE = ("alice", "hostloss-alice-pass-1")
RITA = ("rita", "hostloss-rita-pass-01")
ADMIN = ("admin", "hostloss-admin-pass-01")
# archive_timeout (the default 60 s) plus the time pgBackRest takes to push the segment.
METRICS_RPO_LIMIT = 75
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
SCENARIO = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
REPORT = EPHEMERAL / "hostloss-report.json"

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
os.environ.update(
    MLFLOW_TRACKING_URI=URI,
    MLFLOW_TRACKING_USERNAME=ALICE[0],
    MLFLOW_TRACKING_PASSWORD=ALICE[1],
    MLFLOW_TRACKING_INSECURE_TLS="true",
    # A dead host must fail a call in seconds, not after mlflow's default retries.
    MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
    MLFLOW_HTTP_REQUEST_TIMEOUT="10",
)

from mlflow.tracking import MlflowClient  # noqa: E402 - reads the environment above

STATE: dict = {}


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def _on_host(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = _docker("exec", HOST, *argv, check=False)
    assert not check or proc.returncode == 0, f"{argv}: {proc.stdout}{proc.stderr}"
    return proc


def _api(method: str, path: str, auth: tuple[str, str] = ADMIN, **kwargs) -> requests.Response:
    return requests.request(method, URI + path, auth=auth, verify=False, timeout=30, **kwargs)  # noqa: S501


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Workload:
    """Clients logging runs, params, metric steps and artifacts until told to stop or the host dies.

    Each call is recorded with the time its answer came (the server had committed it by then)."""

    def __init__(self, client: MlflowClient, experiment_id: str, scratch: Path):
        self.client, self.experiment_id, self.scratch = client, experiment_id, scratch
        self.acks: list[tuple[float, str, tuple]] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _ack(self, kind: str, *payload) -> None:
        self.acks.append((time.time(), kind, payload))

    def _run(self) -> None:
        try:
            number = 0
            while not self.stop.is_set():
                number += 1
                run_id = self.client.create_run(self.experiment_id, run_name=f"drill-{number}").info.run_id
                self._ack("run", run_id)
                self.client.log_param(run_id, "lr", f"0.0{number}")
                self._ack("param", run_id, "lr", f"0.0{number}")
                for step in range(40):
                    if self.stop.is_set():
                        break
                    value = random.random()  # noqa: S311 - test data
                    self.client.log_metric(run_id, "loss", value, timestamp=int(time.time() * 1000), step=step)
                    self._ack("metric", run_id, step, value)
                    if step % 10 == 9:
                        data = os.urandom(4096)
                        path = self.scratch / f"blob-{step}.bin"
                        path.write_bytes(data)
                        self.client.log_artifact(run_id, str(path))
                        self._ack("artifact", run_id, path.name, _sha(data))
                    time.sleep(0.2)
        except Exception as exc:  # the host went away under it
            self.error = exc

    def acked(self, kind: str, before: float) -> list[tuple[float, tuple]]:
        return [(t, payload) for t, k, payload in self.acks if k == kind and t < before]


def _recreate(inspect: dict) -> None:
    """A new host in place of the lost one: same name, address, image and flags; an empty file system."""
    config, host_config = inspect["Config"], inspect["HostConfig"]
    (network, settings), *_ = inspect["NetworkSettings"]["Networks"].items()
    args = ["run", "-d", "--name", HOST, "--hostname", config["Hostname"], "--network", network]
    args += ["--ip", settings["IPAMConfig"]["IPv4Address"]]
    args += [arg for cap in host_config.get("CapAdd") or [] for arg in ("--cap-add", cap)]
    args += [arg for opt in host_config.get("SecurityOpt") or [] for arg in ("--security-opt", opt)]
    args += ["--cgroupns", host_config.get("CgroupnsMode") or "host"]
    args += [
        arg
        for path, opts in (host_config.get("Tmpfs") or {}).items()
        for arg in ("--tmpfs", f"{path}:{opts}" if opts else path)
    ]
    args += [arg for bind in host_config.get("Binds") or [] for arg in ("-v", bind)]
    args += [arg for env in config.get("Env") or [] for arg in ("-e", env)]
    args += [arg for key, value in (config.get("Labels") or {}).items() for arg in ("--label", f"{key}={value}")]
    args += [config["Image"], *(config.get("Cmd") or [])]
    _docker(*args)
    deadline = time.monotonic() + 120
    while _on_host("systemctl", "is-system-running", check=False).stdout.strip() not in ("running", "degraded"):
        assert time.monotonic() < deadline, "systemd did not come up on the new host"
        time.sleep(1)


def _trust_the_ca_again() -> None:
    # The same playbook prepare ran, with molecule's inventory (the user's provisioning, not the product).
    playbook = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run(
        [str(playbook), "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(SCENARIO / "trust.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def _wait_for_mlflow(timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if _api("GET", "/health", auth=ALICE).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "mlflow did not answer through nginx"
        time.sleep(2)


def _history(client: MlflowClient, run_id: str) -> dict[int, float]:
    return {metric.step: metric.value for metric in client.get_metric_history(run_id, "loss")}


@pytest.fixture(scope="module")
def client() -> MlflowClient:
    _wait_for_mlflow()
    return MlflowClient()


def test_the_users_converges_left_nothing_to_change(user_runs):
    assert user_runs.recap("converge")[HOST]["failed"] == 0
    assert user_runs.changed_tasks("reconverge") == []
    assert user_runs.recap("check")[HOST]["changed"] == 0


def test_the_database_has_a_base_backup_and_ships_its_wal_from_the_first_converge():
    info = json.loads(
        _on_host(
            "runuser",
            "-u",
            "postgres",
            "--",
            "pgbackrest",
            "--config=/etc/pgbackrest.conf",
            "--stanza=mlflow",
            "--output=json",
            "info",
        ).stdout
    )
    assert [backup["type"] for backup in info[0]["backup"]] == ["full"], info
    assert info[0]["status"]["code"] == 0 and info[0]["archive"][0]["max"], info
    assert _on_host("runuser", "-u", "postgres", "--", "psql", "-tAc", "show archive_timeout").stdout.strip() == "1min"


def test_total_host_loss_then_restore_from_the_target_alone(client, user_runs, tmp_path):
    experiment_id = client.create_experiment("drill")
    model_run = client.create_run(experiment_id, run_name="model")
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    client.log_artifact(model_run.info.run_id, str(tmp_path / "MLmodel"), "model")
    client.create_registered_model("drill-model")
    version = client.create_model_version(
        "drill-model", f"{model_run.info.artifact_uri}/model", run_id=model_run.info.run_id
    )
    granted = _api(
        "POST",
        "/api/2.0/mlflow/experiments/permissions/create",
        json={"experiment_id": experiment_id, "username": RITA[0], "permission": "READ"},
    )
    assert granted.status_code == 200, granted.text

    workload = Workload(client, experiment_id, tmp_path)
    workload.thread.start()
    time.sleep(30)
    # The jobs their timers run (every 15 minutes, hourly), once, while the clients write.
    _on_host("systemctl", "start", "mlops-backup@stores.service")
    artifacts_started = time.time()
    _on_host("systemctl", "start", "mlops-backup@artifacts.service")
    time.sleep(METRICS_RPO_LIMIT + 15)
    assert workload.error is None, workload.error

    inspect = json.loads(_docker("inspect", HOST).stdout)[0]
    lost_at = time.time()
    _docker("rm", "--force", "--volumes", HOST)
    workload.thread.join(timeout=60)
    assert workload.error is not None, "the clients did not notice the host was gone"

    _recreate(inspect)
    _trust_the_ca_again()
    converge_s = user_runs.playbook("newhost-converge", "mlops.mlflow.site")
    # Until the restore, the new host's jobs refuse the target: its empty stores stay off the backups.
    refused = _on_host("systemctl", "start", "mlops-backup@artifacts.service", check=False)
    assert refused.returncode != 0
    journal = _on_host("journalctl", "-u", "mlops-backup@artifacts.service", "--no-pager").stdout
    assert "names another host" in journal, journal[-2000:]
    restore_s = user_runs.playbook("restore", "mlops.mlflow.restore", "-e", "mlops_restore_from=target")
    _wait_for_mlflow()

    # Runs and params: every one acknowledged is back.
    runs = {run.info.run_id: run for run in client.search_runs([experiment_id], max_results=5000)}
    metrics = workload.acked("metric", lost_at)
    acked_runs = [payload[0] for _t, payload in workload.acked("run", lost_at)]
    histories = {run_id: _history(client, run_id) for run_id in acked_runs if run_id in runs}
    missing = [(t, p) for t, p in metrics if histories.get(p[0], {}).get(p[1]) != p[2]]
    # What is lost is the tail: every step acknowledged before the first missing one is back, equal.
    first_missing = min((t for t, _p in missing), default=lost_at)
    assert [p for t, p in metrics if t < first_missing and (t, p) in missing] == []
    assert len(missing) == len([1 for t, _p in metrics if t >= first_missing])
    rpo = lost_at - first_missing
    assert rpo <= METRICS_RPO_LIMIT, f"{rpo:.1f} s of metrics lost ({len(missing)} steps)"
    kept_runs = [run_id for t, (run_id,) in workload.acked("run", first_missing)]
    assert set(kept_runs) <= set(runs)
    for _t, (run_id, key, value) in workload.acked("param", first_missing):
        assert runs[run_id].data.params[key] == value

    # Artifacts: every one logged before the last artifacts job is back, byte for byte.
    artifacts = workload.acked("artifact", lost_at)
    before_job = [p for t, p in artifacts if t < artifacts_started]
    assert before_job, "no artifact was logged before the artifacts job"
    for run_id, name, sha in before_job:
        local = client.download_artifacts(run_id, name, tempfile.mkdtemp(dir=tmp_path))
        assert _sha(Path(local).read_bytes()) == sha, (run_id, name)
    after_job = [p for t, p in artifacts if t >= artifacts_started]
    artifacts_missing = 0
    for run_id, name, sha in after_job:
        try:
            local = client.download_artifacts(run_id, name, tempfile.mkdtemp(dir=tmp_path))
        except Exception:  # logged after the last copy: lost with the host
            artifacts_missing += 1
            continue
        assert _sha(Path(local).read_bytes()) == sha, (run_id, name)

    # The registry, the auth app's users and the permission granted.
    restored_version = client.get_model_version("drill-model", version.version)
    assert restored_version.source == version.source and restored_version.run_id == model_run.info.run_id
    permission = _api(
        "GET",
        "/api/2.0/mlflow/experiments/permissions/get",
        params={"experiment_id": experiment_id, "username": "rita"},
    )
    assert permission.status_code == 200 and permission.json()["experiment_permission"]["permission"] == "READ"
    rita = _api("GET", "/api/2.0/mlflow/experiments/get", auth=RITA, params={"experiment_id": experiment_id})
    assert rita.status_code == 200, rita.text

    report = {
        "lost_at": datetime.datetime.fromtimestamp(lost_at, datetime.UTC).isoformat(timespec="seconds"),
        "runs_acknowledged": len(acked_runs),
        "runs_restored": len([run_id for run_id in acked_runs if run_id in runs]),
        "metric_steps_acknowledged": len(metrics),
        "metric_steps_lost": len(missing),
        "metrics_rpo_s": round(rpo, 1),
        "artifacts_acknowledged": len(artifacts),
        "artifacts_restored": len(artifacts) - artifacts_missing,
        "artifacts_logged_after_the_last_artifacts_job": len(after_job),
        "artifacts_rpo_s": round(lost_at - artifacts_started, 1) if artifacts_missing else 0.0,
        "new_host_converge_s": round(converge_s),
        "restore_s": round(restore_s),
    }
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    STATE.update(experiment_id=experiment_id, runs=len(runs))


def test_the_restored_host_backs_up_again():
    _on_host("systemctl", "start", "mlops-backup@stores.service", "mlops-backup@artifacts.service")
    info = json.loads(
        _on_host(
            "runuser",
            "-u",
            "postgres",
            "--",
            "pgbackrest",
            "--config=/etc/pgbackrest.conf",
            "--stanza=mlflow",
            "--output=json",
            "info",
        ).stdout
    )
    # The old host's full backup, and the restored cluster's own.
    assert [backup["type"] for backup in info[0]["backup"]] == ["full", "full"], info


def test_point_in_time_brings_back_an_experiment_purged_by_mistake(client, user_runs):
    assert STATE, "the host-loss drill did not run"
    experiment_id = client.create_experiment("precious")
    run_id = client.create_run(experiment_id, run_name="keep-me").info.run_id
    for step in range(5):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    client.log_param(run_id, "kept", "yes")
    time.sleep(2)
    before = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S+00")
    time.sleep(2)
    client.delete_experiment(experiment_id)  # by mistake
    _on_host("systemctl", "start", "mlflow-gc.service")  # and purged for good
    assert client.get_experiment_by_name("precious") is None
    # The deletion's WAL in the repository (as archive_timeout would, within a minute).
    _on_host(
        "runuser", "-u", "postgres", "--", "pgbackrest", "--config=/etc/pgbackrest.conf", "--stanza=mlflow", "check"
    )

    user_runs.playbook(
        "restore-pitr",
        "mlops.mlflow.restore",
        "-e",
        json.dumps({"mlops_restore_from": "target", "mlops_restore_time": before}),
    )
    _wait_for_mlflow()
    precious = client.get_experiment_by_name("precious")
    assert precious is not None and precious.lifecycle_stage == "active"
    run = client.get_run(run_id)
    assert run.data.params == {"kept": "yes"}
    assert _history(client, run_id) == {step: 1.0 / (step + 1) for step in range(5)}
    # The drill's restored runs are all still there.
    assert len(client.search_runs([STATE["experiment_id"]], max_results=5000)) == STATE["runs"]
