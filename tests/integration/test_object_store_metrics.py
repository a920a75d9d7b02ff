"""object_store's SeaweedFS metrics: off by default; on, the role's unit passes -metricsIp and
-metricsPort (9327), and a real `weed server` (tests/support/s3_servers.py) started with those
flags answers Prometheus text on that address only. Preflight refuses all interfaces and MinIO.
"""

from __future__ import annotations

import configparser
import http.client
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from conftest import find_free_port, run_playbook
from support.role_template import render_role_template
from support.s3_servers import _remove_weed_sockets, start_seaweedfs

pytestmark = pytest.mark.integration

KEYS = {
    "object_store_admin_access_key": "ADMINKEY01",
    "object_store_admin_secret_key": "a-good-admin-secret",
    "object_store_mlflow_access_key": "MLFLOWKEY01",
    "object_store_mlflow_secret_key": "a-good-mlflow-secret",
}


def _argv(tmp_path: Path, overrides: dict) -> list[str]:
    text = render_role_template("object_store", "seaweedfs.service.j2", tmp_path / "unit", tmp_path, overrides)
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(text)
    return shlex.split(parser["Service"]["ExecStart"])


def test_metrics_are_off_by_default(tmp_path):
    assert not [arg for arg in _argv(tmp_path, {}) if arg.startswith("-metrics")]


def test_metrics_flags_serve_prometheus_text_on_the_address(tmp_path):
    flags = [arg for arg in _argv(tmp_path, {"object_store_metrics_enabled": True}) if arg.startswith("-metrics")]
    assert flags == ["-metricsIp=127.0.0.1", "-metricsPort=9327"]
    port = find_free_port()  # the contract's 9327 may be taken on a shared test host
    server = start_seaweedfs(tmp_path / "sw", extra_args=[flags[0], f"-metricsPort={port}"])
    try:
        deadline, body = time.monotonic() + 60, ""
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/metrics")
                body = conn.getresponse().read().decode()
                conn.close()
                if "SeaweedFS_" in body:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert "SeaweedFS_" in body, body[-2000:]
        listening = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
        on_port = [line for line in listening.splitlines() if f":{port} " in line]
        assert on_port and all(f"127.0.0.1:{port} " in line for line in on_port), on_port
    finally:
        server.stop()
        _remove_weed_sockets(server.ports)


def _preflight(tmp_path: Path, variables: dict) -> subprocess.CompletedProcess:
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.import_role": {"name": "mlops.mlflow.object_store", "tasks_from": "preflight"}}],
    }
    return run_playbook(
        [play], tmp_path, variables={**KEYS, "object_store_metrics_enabled": True, **variables}, check=True
    )


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"object_store_metrics_address": "0.0.0.0"}, "object_store_metrics_address must be an IP address"),  # noqa: S104
        ({"object_store_metrics_address": "::"}, "object_store_metrics_address must be an IP address"),
        ({"object_store_metrics_address": "metrics.example"}, "object_store_metrics_address must be an IP address"),
        (
            {"object_store_backend": "minio", "object_store_minio_binary": "/usr/local/bin/minio"},
            "object_store_metrics_enabled needs object_store_backend=seaweedfs",
        ),
    ],
)
def test_preflight_refuses_public_or_bad_addresses(tmp_path, variables, message):
    proc = _preflight(tmp_path, variables)
    assert proc.returncode != 0
    assert message in proc.stdout


def test_preflight_accepts_a_private_address(tmp_path):
    proc = _preflight(tmp_path, {"object_store_metrics_address": "10.0.0.7"})
    assert proc.returncode == 0, proc.stdout[-3000:]
