"""Fixtures shared by every molecule scenario's testinfra verify."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

SMOKE_SCRIPT = Path(__file__).parent / "resources" / "mlflow_smoke.py"
MLFLOW_PYTHON = "/opt/mlflow/venv/bin/python"


@pytest.fixture
def mlflow_smoke(host):
    """Run the real mlflow client inside the test host: mlflow_smoke(mode, tag, uri=...) -> dict."""
    payload = base64.b64encode(SMOKE_SCRIPT.read_bytes()).decode()
    host.check_output(f"echo {payload} | base64 -d > /root/mlflow_smoke.py")

    def _run(mode: str, tag: str, uri: str = "http://127.0.0.1:5000", env: str = "") -> dict:
        result = host.run(f"{env} {MLFLOW_PYTHON} /root/mlflow_smoke.py {mode} {tag} --uri {uri}")
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        assert result.rc == 0, f"smoke {mode} failed (rc={result.rc}): {result.stdout}\n{result.stderr}"
        return json.loads(lines[-1])

    return _run


def wait_for_health(host, url: str = "http://127.0.0.1:5000/health", timeout: int = 180) -> None:
    probe = (
        'python3 -c "import urllib.request,sys; '
        f"sys.exit(0 if urllib.request.urlopen('{url}', timeout=5).status == 200 else 1)\""
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if host.run(probe).rc == 0:
                return
        except Exception:
            pass
        time.sleep(2)
    raise AssertionError(f"{url} did not answer 200 within {timeout}s")


@pytest.fixture
def reboot(host):
    """Restart the test container (a host reboot) and wait until systemd is up again."""

    def _reboot() -> None:
        name = host.backend.get_hostname()  # molecule names the container after the host
        subprocess.run(["docker", "restart", "-t", "30", name], check=True, capture_output=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = host.run("systemctl is-system-running").stdout.strip()
            if state in {"running", "degraded"}:
                return
            time.sleep(1)
        raise AssertionError("systemd did not come back after the restart")

    return _reboot


@pytest.fixture
def health(host):
    return lambda url="http://127.0.0.1:5000/health", timeout=180: wait_for_health(host, url, timeout)


# Two runs in one experiment, each with a metric and an artifact; one deleted (soft: only its
# lifecycle_stage changes until mlflow gc purges it). Prints {"kept": id, "deleted": id}.
_KEPT_AND_DELETED_RUNS = """
import json, os, sys, tempfile
from mlflow.tracking import MlflowClient
client = MlflowClient()
experiment = client.create_experiment(sys.argv[1])
ids = {}
for name in ("kept", "deleted"):
    run = client.create_run(experiment, run_name=name)
    client.log_metric(run.info.run_id, "loss", 0.5, step=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, name + ".txt")
        with open(path, "w") as handle:
            handle.write(name * 1000)
        client.log_artifact(run.info.run_id, path)
    client.set_terminated(run.info.run_id)
    ids[name] = run.info.run_id
client.delete_run(ids["deleted"])
print(json.dumps(ids))
"""


@pytest.fixture
def kept_and_deleted_runs(host):
    """kept_and_deleted_runs(experiment, env) -> {"kept": run id, "deleted": run id}: logged with the
    real mlflow client in the host (env: its MLFLOW_TRACKING_* settings), one run deleted."""
    payload = base64.b64encode(_KEPT_AND_DELETED_RUNS.encode()).decode()
    host.check_output(f"echo {payload} | base64 -d > /root/kept_and_deleted_runs.py")

    def _log(experiment: str, env: str) -> dict:
        out = host.check_output(f"{env} {MLFLOW_PYTHON} /root/kept_and_deleted_runs.py {experiment}")
        return json.loads(out.splitlines()[-1])

    return _log


_HTTP_PROBE = """
import base64, json, ssl, sys, urllib.error, urllib.request
url, user, password, host_header = sys.argv[1:5]
req = urllib.request.Request(url)
if user:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    req.add_header("Authorization", "Basic " + token)
if host_header:
    req.add_header("Host", host_header)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), NoRedirect)
try:
    resp = opener.open(req, timeout=30)
    print(json.dumps({"status": resp.status, "headers": dict(resp.headers)}))
except urllib.error.HTTPError as err:
    print(json.dumps({"status": err.code, "headers": dict(err.headers)}))
"""


@pytest.fixture
def http(host):
    """http(url, user="", password="", host_header="") -> {"status": int, "headers": {...}} from inside the host."""
    payload = base64.b64encode(_HTTP_PROBE.encode()).decode()
    host.check_output(f"echo {payload} | base64 -d > /root/http_probe.py")

    def _get(url: str, user: str = "", password: str = "", host_header: str = "") -> dict:
        quoted = " ".join(f"'{arg}'" for arg in (url, user, password, host_header))
        return json.loads(host.check_output(f"python3 /root/http_probe.py {quoted}"))

    return _get


USER_HOME_ENV = "MOLECULE_EPHEMERAL_DIRECTORY"
_RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


class UserRuns:
    """The runs of resources/user_path.yml: the user's directory, its logs and their recaps."""

    def __init__(self) -> None:
        self.home = Path(os.environ[USER_HOME_ENV]) / "user"

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text()

    def recap(self, name: str) -> dict[str, dict[str, int]]:
        """host -> {ok, changed, unreachable, failed} from the PLAY RECAP of one run."""
        recap = self.log(name).rsplit("PLAY RECAP", 1)[-1]
        return {
            host: dict(zip(("ok", "changed", "unreachable", "failed"), map(int, counts)))
            for host, *counts in _RECAP.findall(recap)
        }

    def run(self, name: str, *argv: str, timeout: float = 3600) -> tuple[int, float]:
        """Run argv from the user's directory as their runs do (user_path.yml's wrapper), the output in
        <name>.log: (exit code, seconds it took)."""
        started = time.monotonic()
        with (self.home / f"{name}.log").open("w") as log:
            proc = subprocess.run(
                [str(self.home / "run"), *argv], stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
        return proc.returncode, time.monotonic() - started

    def playbook(self, name: str, playbook: str, *args: str) -> float:
        """ansible-playbook <playbook> -i inventory with the user's vault: its seconds; an error fails the test."""
        rc, seconds = self.run(
            name, "ansible-playbook", playbook, "-i", "inventory", "--vault-password-file", "vault-pass", *args
        )
        assert rc == 0, f"{playbook} failed (rc={rc}):\n" + self.log(name)[-6000:]
        return seconds

    def changed_tasks(self, name: str) -> list[str]:
        """The task headers of one run under which a host reported changed."""
        tasks, current = [], ""
        for line in self.log(name).splitlines():
            if line.startswith("TASK ["):
                current = line
            elif line.startswith("changed:"):
                tasks.append(f"{current} {line}")
        return tasks


@pytest.fixture(scope="session")
def user_runs() -> UserRuns:
    return UserRuns()
