"""The user's host is its own mlflow_monitoring host: after mlops.mlflow.site, a real Prometheus
(Debian's) scrapes every exporter the layout turned on, on loopback, and its alert rules act.

- every job of the layout (prometheus, node, postgres, seaweedfs, mlflow, nginx) reports up == 1;
- mlflow stopped makes MLflowDown fire (read from Prometheus' API), started again clears it;
- no exporter, no Prometheus and no mlflow answers on the host's network address: only nginx does.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.parse

import pytest

PROMETHEUS = "http://127.0.0.1:9090"
JOBS = {"prometheus", "node", "postgres", "seaweedfs", "mlflow", "nginx"}
# Prometheus, node, PostgreSQL, nginx and SeaweedFS exporters, mlflow (/metrics), PostgreSQL itself.
PRIVATE_PORTS = [9090, 9100, 9187, 9113, 9327, 5000, 5432, 8333]


def _api(host, path: str, **params: str):
    url = f"{PROMETHEUS}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    probe = f"import json,urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    return json.loads(host.check_output(f"python3 -c {json.dumps(probe)}"))["data"]


def _up(host) -> dict[str, str]:
    return {r["metric"]["job"]: r["value"][1] for r in _api(host, "query", query="up")["result"]}


def _firing(host) -> set[str]:
    return {a["labels"]["alertname"] for a in _api(host, "alerts")["alerts"] if a["state"] == "firing"}


def _until(what: str, probe, timeout: float = 120):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except AssertionError as exc:  # testinfra's check_output while a service restarts
            last = exc
        time.sleep(2)
    raise AssertionError(f"{what} not seen in {timeout}s; last: {last}")


def test_every_target_of_the_layout_is_up(host):
    def all_up():
        up = _up(host)
        return up if set(up) == JOBS and set(up.values()) == {"1"} else None

    up = _until("up == 1 for every job", all_up)
    assert set(up) == JOBS


def test_mlflow_metrics_arrive_under_the_contracts_name(host):
    assert _until("mlflow_http_request_total", lambda: _api(host, "query", query="mlflow_http_request_total")["result"])


def test_mlflow_down_fires_and_clears(host, health):
    _until("MLflowDown quiet before the outage", lambda: "MLflowDown" not in _firing(host))
    host.check_output("systemctl stop mlflow-server")
    try:
        _until("MLflowDown firing", lambda: "MLflowDown" in _firing(host))
    finally:
        host.check_output("systemctl start mlflow-server")
    health()
    _until("MLflowDown cleared", lambda: "MLflowDown" not in _firing(host))
    assert _up(host)["mlflow"] == "1"


@pytest.mark.parametrize("port", PRIVATE_PORTS)
def test_nothing_but_nginx_answers_from_outside(host, port):
    address = host.check_output("hostname -I").split()[0]
    with socket.create_connection((address, 443), timeout=5):
        pass  # nginx is public
    with pytest.raises(OSError):
        socket.create_connection((address, port), timeout=3).close()
