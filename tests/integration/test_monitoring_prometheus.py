"""The monitoring role's Prometheus, run for real: the role's templates render the scrape
configuration, the alert rules and Debian's ARGS from an inventory with one mlflow server, and
the Debian prometheus binary runs them on loopback against real targets:

- the dev venv's mlflow with --expose-prometheus (job mlflow) and the Debian node exporter with a
  textfile directory (job node), both on 127.0.0.1;
- every target reports up == 1, mlflow's request counter arrives under the contract's name, and
  the textfile's failed reconverge run fires ReconvergeFailed;
- mlflow frozen (SIGSTOP: it accepts connections and never answers, like a hung server) fires
  MLflowDown; the node exporter stopped fires TargetDown; mlflow thawed and the exporter started
  again clear both.

Intervals are 5 s (the preflight's lowest scrape interval) and `for:` 10 s to keep it short.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO_ROOT, _ansible_env, find_free_port
from support.mlflow_auth_server import _wait_healthy, stop
from support.role_mlflow_server import MLFLOW
from support.role_template import role_vars

pytestmark = pytest.mark.integration

PROMETHEUS = "/usr/bin/prometheus"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
TEMPLATES = REPO_ROOT / "roles" / "monitoring" / "templates"


def _render(tmp_path: Path, mlflow_port: int, variables: dict) -> dict[str, Path]:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"[mlflow_monitoring]\nmon ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        f"[mlflow_server]\nsrv mlops_private_address=127.0.0.1 mlflow_server_port={mlflow_port}\n"
    )
    out = {name: tmp_path / name for name in ("prometheus.yml", "rules.yml", "default")}
    sources = {"prometheus.yml": "prometheus.yml.j2", "rules.yml": "mlops-mlflow-rules.yml.j2"}
    sources["default"] = "prometheus.default.j2"
    play = [
        {
            "hosts": "mlflow_monitoring",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Render the monitoring role's templates",
                    "ansible.builtin.template": {
                        "src": str(TEMPLATES / "{{ item.src }}"),
                        "dest": "{{ item.dest }}",
                        "mode": "0644",
                    },
                    "loop": [{"src": sources[name], "dest": str(path)} for name, path in out.items()],
                }
            ],
        }
    ]
    (tmp_path / "play.json").write_text(json.dumps(play))
    (tmp_path / "vars.json").write_text(json.dumps({**role_vars("monitoring"), **variables}))
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(inventory),
            "-e",
            f"@{tmp_path / 'vars.json'}",
            str(tmp_path / "play.json"),
        ],
        capture_output=True,
        text=True,
        env=_ansible_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return out


def _api(base: str, path: str, **params: str):
    url = f"{base}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)["data"]


def _up(base: str) -> dict[str, str]:
    return {r["metric"]["job"]: r["value"][1] for r in _api(base, "query", query="up")["result"]}


def _firing(base: str) -> set[str]:
    return {a["labels"]["alertname"] for a in _api(base, "alerts")["alerts"] if a["state"] == "firing"}


def _until(what: str, probe, timeout: float = 90):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(1)
    raise AssertionError(f"{what} not seen in {timeout}s; last: {last}")


def _start(args: list[str], log: Path, **kwargs) -> subprocess.Popen:
    with log.open("ab") as sink:
        return subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)


def test_prometheus_scrapes_and_alerts_on_real_targets(tmp_path):
    mlflow_port, node_port, prom_port = find_free_port(), find_free_port(), find_free_port()
    home = tmp_path / "mlflow"
    (home / "prometheus").mkdir(parents=True)
    mlflow = _start(
        [
            str(MLFLOW),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
            "--backend-store-uri",
            f"sqlite:///{home / 'mlflow.db'}",
            "--default-artifact-root",
            str(home / "artifacts"),
            "--expose-prometheus",
            str(home / "prometheus"),
            "--workers",
            "1",
        ],
        tmp_path / "mlflow.log",
        cwd=home,
    )
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    (textfile / "mlops-reconverge.prom").write_text(
        "mlops_reconverge_last_run_success 0\nmlops_reconverge_drift_changed_tasks 0\n"
    )
    node_args = [
        NODE_EXPORTER,
        f"--web.listen-address=127.0.0.1:{node_port}",
        "--collector.disable-defaults",
        "--collector.textfile",
        f"--collector.textfile.directory={textfile}",
    ]
    procs = [mlflow]
    try:
        files = _render(
            tmp_path,
            mlflow_port,
            {
                "_monitoring_rules_file": str(tmp_path / "rules.yml"),
                "monitoring_listen_address": f"127.0.0.1:{prom_port}",
                "monitoring_node_exporter_port": node_port,
                "monitoring_scrape_interval_seconds": 5,
                "monitoring_evaluation_interval_seconds": 5,
                "monitoring_down_for_seconds": 10,  # two missed scrapes, not one slow one
            },
        )
        # Debian's unit runs `prometheus $ARGS`: the role's ARGS, plus the paths the unit's defaults give.
        args = shlex.split(files["default"].read_text().split('ARGS="', 1)[1].split('"', 1)[0])
        assert f"--web.listen-address=127.0.0.1:{prom_port}" in args
        assert "--storage.tsdb.retention.time=15d" in args
        node = _start(node_args, tmp_path / "node.log")
        procs.append(node)
        prometheus = _start(
            [
                PROMETHEUS,
                *args,
                f"--config.file={files['prometheus.yml']}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
            ],
            tmp_path / "prometheus.log",
        )
        procs.append(prometheus)
        base = f"http://127.0.0.1:{prom_port}"
        _wait_healthy(f"http://127.0.0.1:{mlflow_port}", mlflow, tmp_path / "mlflow.log")
        urllib.request.urlopen(
            f"http://127.0.0.1:{mlflow_port}/api/2.0/mlflow/experiments/search?max_results=1"
        ).close()

        _until("every target up", lambda: _up(base) == {"prometheus": "1", "mlflow": "1", "node": "1"})
        counted = _until(
            "mlflow's request counter",
            lambda: _api(base, "query", query='mlflow_http_request_total{job="mlflow",host="srv"}')["result"],
        )
        assert counted[0]["metric"]["instance"] == f"127.0.0.1:{mlflow_port}"
        _until("ReconvergeFailed from the textfile", lambda: "ReconvergeFailed" in _firing(base))
        # On a loaded machine one scrape may time out while everything starts: wait for a quiet
        # state before the outage (the textfile's 0 changed tasks never fire DriftFound).
        _until("no target down", lambda: not {"MLflowDown", "TargetDown"} & _firing(base))
        assert "DriftFound" not in _firing(base)

        os.killpg(mlflow.pid, signal.SIGSTOP)
        stop(node)
        _until("MLflowDown and TargetDown firing", lambda: {"MLflowDown", "TargetDown"} <= _firing(base))
        alerts = {a["labels"]["alertname"]: a["labels"] for a in _api(base, "alerts")["alerts"]}
        assert alerts["MLflowDown"]["host"] == "srv"
        assert alerts["TargetDown"]["job"] == "node"

        os.killpg(mlflow.pid, signal.SIGCONT)
        node = _start(node_args, tmp_path / "node.log")
        procs.append(node)
        _until("both alerts cleared", lambda: not {"MLflowDown", "TargetDown"} & _firing(base))
        assert _up(base) == {"prometheus": "1", "mlflow": "1", "node": "1"}
    finally:
        if mlflow.poll() is None:
            os.killpg(mlflow.pid, signal.SIGCONT)
        for proc in reversed(procs):
            stop(proc)
