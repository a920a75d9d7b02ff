"""common's node exporter: Debian's prometheus-node-exporter started with the ARGS of the role's
/etc/default file listens where common_node_exporter_listen says and serves the textfile
collector's *.prom files; preflight refuses an address on all interfaces.

The exporter is the host's /usr/bin/prometheus-node-exporter (scripts/host-deps); the textfile
directory is pointed at a temp dir (the role's is Debian's /var/lib/prometheus/node-exporter).
"""

from __future__ import annotations

import http.client
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import find_free_port, run_playbook
from support.role_template import render_role_template, role_vars

EXPORTER = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"


def _args(tmp_path: Path, overrides: dict) -> list[str]:
    text = render_role_template(
        "common", "prometheus-node-exporter.default.j2", tmp_path / "prometheus-node-exporter", tmp_path, overrides
    )
    line = next(line for line in text.splitlines() if line.startswith("ARGS="))
    return shlex.split(line.split("=", 1)[1])[0].split()  # systemd splits $ARGS on white space


def test_textfile_directory_is_debians_default():
    assert role_vars("common")["_common_node_exporter_textfile_dir"] == "/var/lib/prometheus/node-exporter"


def test_default_args_listen_on_loopback(tmp_path):
    args = _args(tmp_path, {})
    assert "--web.listen-address=127.0.0.1:9100" in args
    assert "--collector.textfile.directory=/var/lib/prometheus/node-exporter" in args


def test_exporter_serves_textfile_metrics_on_the_listen_address(tmp_path):
    if not Path(EXPORTER).exists():
        pytest.fail(f"{EXPORTER} missing: run scripts/host-deps")
    port = find_free_port()
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    (textfiles / "probe.prom").write_text("mlops_reconverge_last_run_success 1\n")
    args = _args(
        tmp_path,
        {"common_node_exporter_listen": f"127.0.0.1:{port}", "_common_node_exporter_textfile_dir": str(textfiles)},
    )
    proc = subprocess.Popen([EXPORTER, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, body = time.monotonic() + 30, ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"exporter exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/metrics")
                body = conn.getresponse().read().decode()
                conn.close()
                break
            except OSError:
                time.sleep(0.2)
        assert "mlops_reconverge_last_run_success 1" in body.splitlines(), body[-2000:]
        listening = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
        mine = [line for line in listening.splitlines() if f"pid={proc.pid}," in line]
        assert mine and all(f"127.0.0.1:{port}" in line for line in mine), mine
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _preflight(tmp_path: Path, variables: dict) -> subprocess.CompletedProcess:
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.import_role": {"name": "mlops.mlflow.common", "tasks_from": "preflight"}}],
    }
    return run_playbook([play], tmp_path, variables={"common_node_exporter_enabled": True, **variables}, check=True)


@pytest.mark.parametrize("value", ["0.0.0.0:9100", ":9100", "[::]:9100", "9100"])
def test_preflight_refuses_all_interfaces(tmp_path, value):
    proc = _preflight(tmp_path, {"common_node_exporter_listen": value})
    assert proc.returncode != 0
    assert "common_node_exporter_listen must be host:port" in proc.stdout


def test_preflight_accepts_a_private_address(tmp_path):
    assert _preflight(tmp_path, {"common_node_exporter_listen": "10.1.2.3:9100"}).returncode == 0
