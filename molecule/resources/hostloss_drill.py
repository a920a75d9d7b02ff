"""The host-loss drills' shared parts (molecule/hostloss, molecule/hostloss-sqlite).

From the controller, through the host's nginx, with the real mlflow client: clients that log
continuously and record when each call was answered, the loss of the host (its container and file
system), a new host in its place, and the user's commands run from their directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Drill:
    """One scenario's mlflow host (container `host`, nginx on https://`address`) and its users."""

    def __init__(self, host: str, address: str, alice: tuple[str, str], rita: tuple[str, str], admin: tuple[str, str]):
        self.host, self.uri = host, f"https://{address}"
        self.alice, self.rita, self.admin = alice, rita, admin
        self.ephemeral = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
        self.scenario = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
        self.report = self.ephemeral / "hostloss-report.json"
        os.environ.update(
            MLFLOW_TRACKING_URI=self.uri,
            MLFLOW_TRACKING_USERNAME=alice[0],
            MLFLOW_TRACKING_PASSWORD=alice[1],
            MLFLOW_TRACKING_INSECURE_TLS="true",
            # A dead host must fail a call in seconds, not after mlflow's default retries.
            MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
            MLFLOW_HTTP_REQUEST_TIMEOUT="10",
        )

    def client(self):
        from mlflow.tracking import MlflowClient  # after the environment above

        self.wait_for_mlflow()
        return MlflowClient()

    @staticmethod
    def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)

    def on_host(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = self.docker("exec", self.host, *argv, check=False)
        assert not check or proc.returncode == 0, f"{argv}: {proc.stdout}{proc.stderr}"
        return proc

    def api(self, method: str, path: str, auth: tuple[str, str] | None = None, **kwargs) -> requests.Response:
        auth = auth or self.admin
        return requests.request(method, self.uri + path, auth=auth, verify=False, timeout=30, **kwargs)  # noqa: S501

    def wait_for_mlflow(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.api("GET", "/health", auth=self.alice).status_code == 200:
                    return
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "mlflow did not answer through nginx"
            time.sleep(2)

    def lose_host(self) -> tuple[dict, float]:
        """Destroy the host now (container and volumes): its inspect data and the time of the loss."""
        inspect = json.loads(self.docker("inspect", self.host).stdout)[0]
        lost_at = time.time()
        self.docker("rm", "--force", "--volumes", self.host)
        return inspect, lost_at

    def new_host(self, inspect: dict) -> None:
        """A new host in place of the lost one: same name, address, image and flags, an empty file system;
        then the user's provisioning trusts their CA on it again (the trust.yml prepare ran)."""
        config, host_config = inspect["Config"], inspect["HostConfig"]
        (network, settings), *_ = inspect["NetworkSettings"]["Networks"].items()
        args = ["run", "-d", "--name", self.host, "--hostname", config["Hostname"], "--network", network]
        args += ["--ip", settings["IPAMConfig"]["IPv4Address"], "--cgroupns", host_config.get("CgroupnsMode") or "host"]
        args += [arg for cap in host_config.get("CapAdd") or [] for arg in ("--cap-add", cap)]
        args += [arg for opt in host_config.get("SecurityOpt") or [] for arg in ("--security-opt", opt)]
        tmpfs = host_config.get("Tmpfs") or {}
        args += [arg for path, opts in tmpfs.items() for arg in ("--tmpfs", f"{path}:{opts}" if opts else path)]
        args += [arg for bind in host_config.get("Binds") or [] for arg in ("-v", bind)]
        args += [arg for env in config.get("Env") or [] for arg in ("-e", env)]
        args += [arg for key, value in (config.get("Labels") or {}).items() for arg in ("--label", f"{key}={value}")]
        self.docker(*args, config["Image"], *(config.get("Cmd") or []))
        deadline = time.monotonic() + 120
        while self.on_host("systemctl", "is-system-running", check=False).stdout.strip() not in ("running", "degraded"):
            assert time.monotonic() < deadline, "systemd did not come up on the new host"
            time.sleep(1)
        trust = Path(__file__).parent.parent / "hostloss" / "trust.yml"
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                "-i",
                os.environ["MOLECULE_INVENTORY_FILE"],
                str(trust),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]

    def converged_clean(self, user_runs) -> None:
        """The user's converge worked, the second changed nothing, --check announced nothing."""
        assert user_runs.recap("converge")[self.host]["failed"] == 0
        assert user_runs.changed_tasks("reconverge") == []
        assert user_runs.recap("check")[self.host]["changed"] == 0

    def seed(self, client, tag: str, scratch: Path) -> tuple[str, str, object]:
        """An experiment, a run with a model registered from it, and rita granted EDIT by the admin:
        (experiment id, that run's id, the model version)."""
        experiment_id = client.create_experiment(f"drill-{tag}")
        model_run = client.create_run(experiment_id, run_name="model")
        (scratch / "MLmodel").write_text("flavors: {}\n")
        client.log_artifact(model_run.info.run_id, str(scratch / "MLmodel"), "model")
        client.create_registered_model(f"drill-model-{tag}")
        version = client.create_model_version(
            f"drill-model-{tag}", f"{model_run.info.artifact_uri}/model", run_id=model_run.info.run_id
        )
        self.grant_rita_edit(experiment_id)
        return experiment_id, model_run.info.run_id, version

    def seeded_back(self, client, tag: str, experiment_id: str, run_id: str, version) -> None:
        """The model version and rita's permission came back."""
        restored = client.get_model_version(f"drill-model-{tag}", version.version)
        assert restored.source == version.source and restored.run_id == run_id
        self.rita_can_edit(experiment_id, run_id)

    def lose_and_restore(self, workload: Workload, user_runs, refused: list[str]) -> tuple[float, float, float]:
        """Lose the host while the workload writes, converge a new one and restore it from the target
        with the user's commands; on the way, its jobs named in `refused` refuse the target.
        (time of the loss, seconds of the converge, seconds of the restore)."""
        assert workload.error is None, workload.error
        inspect, lost_at = self.lose_host()
        workload.thread.join(timeout=60)
        assert workload.error is not None, "the clients did not notice the host was gone"
        self.new_host(inspect)
        converge_s = user_runs.playbook("newhost-converge", "mlops.mlflow.site")
        for job in refused:
            self.backup_refused(job)
        restore_s = user_runs.playbook("restore", "mlops.mlflow.restore", "-e", "mlops_restore_from=target")
        self.wait_for_mlflow()
        return lost_at, converge_s, restore_s

    def backup_refused(self, job: str) -> None:
        """The new host's backup job refuses the target before the restore."""
        refused = self.on_host("systemctl", "start", f"mlops-backup@{job}.service", check=False)
        assert refused.returncode != 0
        journal = self.on_host("journalctl", "-u", f"mlops-backup@{job}.service", "--no-pager").stdout
        assert "names another host" in journal, journal[-2000:]

    def grant_rita_edit(self, experiment_id: str) -> None:
        grant = {"username": self.rita[0], "resource_type": "experiment", "resource_id": experiment_id}
        granted = self.api("POST", "/api/3.0/mlflow/users/permissions/grant", json={**grant, "permission": "EDIT"})
        assert granted.status_code == 200, granted.text

    def rita_can_edit(self, experiment_id: str, run_id: str) -> None:
        resource = {"username": self.rita[0], "resource_type": "experiment", "resource_id": experiment_id}
        permission = self.api("GET", "/api/3.0/mlflow/users/permissions/get", params=resource)
        assert permission.status_code == 200 and permission.json()["permission"] == "EDIT", permission.text
        metric = {"run_id": run_id, "key": "by-rita", "value": 1.0, "timestamp": 0, "step": 0}
        by_rita = self.api("POST", "/api/2.0/mlflow/runs/log-metric", auth=self.rita, json=metric)
        assert by_rita.status_code == 200, by_rita.text


class Workload:
    """Clients logging runs, params, metric steps and artifacts until told to stop or the host dies.

    Each call is recorded with the time its answer came (the server had committed it by then)."""

    def __init__(self, client, experiment_id: str, scratch: Path):
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
                        self._ack("artifact", run_id, path.name, sha(data))
                    time.sleep(0.2)
        except Exception as exc:  # the host went away under it
            self.error = exc

    def acked(self, kind: str, before: float, after: float = 0.0) -> list[tuple[float, tuple]]:
        return [(t, payload) for t, k, payload in self.acks if k == kind and after <= t < before]


def history(client, run_id: str) -> dict[int, float]:
    return {metric.step: metric.value for metric in client.get_metric_history(run_id, "loss")}


def artifacts_back(client, artifacts: list[tuple[float, tuple]], scratch: Path) -> tuple[int, int]:
    """(restored equal, missing) of logged artifacts; one restored with other bytes fails the test."""
    import tempfile

    restored = missing = 0
    for _t, (run_id, name, digest) in artifacts:
        try:
            local = client.download_artifacts(run_id, name, tempfile.mkdtemp(dir=scratch))
        except Exception:  # not in the store
            missing += 1
            continue
        assert sha(Path(local).read_bytes()) == digest, (run_id, name)
        restored += 1
    return restored, missing
