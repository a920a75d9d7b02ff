"""Fixtures for the faults verify: a raw REST client, secrets, systemd probes, playbook runs."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

SCENARIO = Path(__file__).resolve().parent.parent
CLIENT_SCRIPT = SCENARIO / "resources" / "faults_client.py"
HOST_VARS = yaml.safe_load((SCENARIO / "host_vars" / "mlops-faults.yml").read_text())
USER = HOST_VARS["mlops_users"][0]
PYTHON = "/opt/mlflow/venv/bin/python"
SECRETS_FILE = "/root/faults-secrets"  # root 0600: grep -f reads the secrets, no command line holds them


@pytest.fixture(scope="module")
def host_vars() -> dict:
    return HOST_VARS


@pytest.fixture(scope="module")
def client(host):
    """client(command, *args) -> dict: faults_client.py inside the host, through nginx, no retries."""
    payload = base64.b64encode(CLIENT_SCRIPT.read_bytes()).decode()
    config = base64.b64encode(
        json.dumps({"url": "https://localhost", "user": USER["name"], "password": USER["password"]}).encode()
    ).decode()
    host.check_output(f"echo {payload} | base64 -d > /root/faults_client.py")
    host.check_output(f"umask 077 && echo {config} | base64 -d > /root/faults-client.json")

    def _run(command: str, *args) -> dict:
        quoted = " ".join(f"'{arg}'" for arg in args)
        result = host.run(f"{PYTHON} /root/faults_client.py {command} {quoted}")
        assert result.rc == 0, f"faults_client {command} failed: {result.stdout}\n{result.stderr}"
        return json.loads(result.stdout.strip().splitlines()[-1])

    return _run


@pytest.fixture(scope="module")
def unit(host):
    """unit(name) -> dict of the systemd properties the tests read."""

    def _show(name: str) -> dict:
        props = "ActiveState,SubState,MainPID,NRestarts,NeedDaemonReload,Result,StartLimitIntervalUSec"
        out = host.check_output(f"systemctl show {name} --property={props}")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    return _show


@pytest.fixture(scope="module")
def postgres_unit(host) -> str:
    """The PostgreSQL cluster unit (postgresql@<version>-main.service)."""
    out = host.check_output("systemctl list-units 'postgresql@*' --plain --no-legend --all")
    return out.split()[0]


def _psql(host, sql: str) -> str:
    return host.check_output(f'runuser -u postgres -- psql -d mlflow -tAc "{sql}"').strip()


@pytest.fixture(scope="module")
def psql(host):
    """psql(sql) -> the unaligned, tuples-only answer of the mlflow database."""
    return lambda sql: _psql(host, sql)


@pytest.fixture(scope="module")
def secrets(host):
    """Every secret of the host_vars plus the hashes derived from them, written to SECRETS_FILE.

    Returns a callable: secrets() -> the current list (hashes change when a run re-sets them).
    """
    seen: set[str] = {
        HOST_VARS["mlops_db_password"],
        HOST_VARS["mlops_s3_admin_secret_key"],
        HOST_VARS["mlops_s3_mlflow_secret_key"],
        USER["password"],
    }

    def _collect() -> list[str]:
        htpasswd = host.check_output(f"awk -F: '$1 == \"{USER['name']}\" {{print $2}}' /etc/nginx/mlflow.htpasswd")
        scram = _psql(host, "select rolpassword from pg_authid where rolname = 'mlflow'")
        seen.update(value for value in (htpasswd.strip(), scram) if value)
        listing = base64.b64encode("\n".join(sorted(seen)).encode()).decode()
        host.check_output(f"umask 077 && echo {listing} | base64 -d > {SECRETS_FILE}")
        return sorted(seen)

    return _collect


class Playbook:
    """ansible-playbook on the molecule inventory and this scenario's converge.yml, from the verify."""

    def __init__(self) -> None:
        self.inventory = str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)
        self.playbook = str(SCENARIO / "converge.yml")
        self.logs = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp"))
        self.binary = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"

    def _command(self, extra: list[str]) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PYTHONUNBUFFERED="1")
        return [self.binary, "-i", self.inventory, self.playbook, "-vvv", "--diff", *extra], env

    def run(self, name: str, *extra: str, kill_after=None, timeout: int = 900) -> dict:
        """Run to the end, or SIGKILL the whole process group once kill_after(line) is true."""
        cmd, env = self._command(list(extra))
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
        )
        watchdog = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
        watchdog.start()
        lines, killed = [], False
        try:
            for line in proc.stdout:
                lines.append(line)
                if kill_after and kill_after(line):
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = True
                    break
            rc = proc.wait()
        finally:
            watchdog.cancel()
        output = "".join(lines)
        (self.logs / f"faults-{name}.log").write_text(output)
        recaps = re.findall(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
        counts = dict(zip(("ok", "changed", "unreachable", "failed"), map(int, recaps[-1]))) if recaps else {}
        return {"rc": rc, "killed": killed, "output": output, "recap": counts}


@pytest.fixture(scope="module")
def playbook() -> Playbook:
    return Playbook()
