"""nginx_proxy's metrics: nothing public, stub_status and Debian's exporter on loopback.

The role's real site file (mlflow-site.conf.j2) is served by a real nginx on loopback in front
of a small upstream that answers every path, /metrics included (as mlflow does with
--expose-prometheus). Through the public site /metrics is refused even with valid credentials,
whether nginx_proxy_metrics_enabled is on or off. With it on, the stub_status server answers on
its loopback address, and Debian's prometheus-nginx-exporter (/usr/bin/prometheus-nginx-exporter,
scripts/host-deps), started with the ARGS of the role's /etc/default file, reads it and reports
``nginx_up 1``. Preflight refuses listen addresses on all interfaces.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from ansible_collections.mlops.mlflow.plugins.module_utils import htpasswd_file as hf
from conftest import find_free_port, run_playbook
from support.nginx import SiteNginx, http_get
from support.role_template import render_role_template
from support.upstream import serve

USER, PASSWORD = "alice", "metrics-alice-password-01"
EXPORTER = shutil.which("prometheus-nginx-exporter") or "/usr/bin/prometheus-nginx-exporter"


class _Upstream(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        body = b"# TYPE mlflow_http_request_total counter\n" if self.path == "/metrics" else b"upstream ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def upstream():
    with serve(_Upstream) as address:
        yield address


@pytest.fixture
def htpasswd(tmp_path) -> Path:
    path = tmp_path / "mlflow.htpasswd"
    path.write_text(f"{USER}:{hf.make_hash(PASSWORD, 'sha512_crypt', 5000)}\n")
    path.chmod(0o644)
    return path


def _get(port: int, path: str, auth: bool = False) -> tuple[int, bytes]:
    return http_get(port, path, USER, PASSWORD) if auth else http_get(port, path)


def _site(tmp_path: Path, htpasswd: Path, upstream: str, http_port: int, **overrides) -> tuple[Path, str]:
    site = tmp_path / "mlflow.conf"
    variables = {
        "nginx_proxy_server_name": "localhost",
        "nginx_proxy_upstreams": [upstream],
        "nginx_proxy_htpasswd_path": str(htpasswd),
        "nginx_proxy_tls_enabled": False,
        "nginx_proxy_http_port": http_port,
        **overrides,
    }
    return site, render_role_template("nginx_proxy", "mlflow-site.conf.j2", site, tmp_path, variables)


@pytest.mark.parametrize("enabled", [False, True])
def test_public_site_refuses_metrics_even_with_credentials(tmp_path, htpasswd, upstream, enabled):
    http_port = find_free_port()
    overrides = {"nginx_proxy_metrics_enabled": enabled}
    if enabled:
        overrides["nginx_proxy_stub_status_listen"] = f"127.0.0.1:{find_free_port()}"
    site, _ = _site(tmp_path, htpasswd, upstream, http_port, **overrides)
    with SiteNginx(site, http_port):
        # The control: the upstream answers, credentials work.
        assert _get(http_port, "/api/2.0/mlflow/experiments/search", auth=True) == (200, b"upstream ok")
        assert _get(http_port, "/metrics", auth=True)[0] == 404
        assert _get(http_port, "/metrics?name[]=x", auth=True)[0] == 404
        assert _get(http_port, "/%6detrics", auth=True)[0] == 404
        assert _get(http_port, "/metrics")[0] == 404
        # The stub_status page is not on the public site either.
        assert _get(http_port, "/stub_status", auth=True) == (200, b"upstream ok")


def test_metrics_off_adds_no_server(tmp_path, htpasswd, upstream):
    _, text = _site(tmp_path, htpasswd, upstream, find_free_port())
    assert "stub_status" not in text
    assert "8084" not in text


def test_stub_status_on_loopback_feeds_the_debian_exporter(tmp_path, htpasswd, upstream):
    if not Path(EXPORTER).exists():
        pytest.fail(f"{EXPORTER} missing: run scripts/host-deps")
    http_port, status_port, exporter_port = find_free_port(), find_free_port(), find_free_port()
    site, text = _site(
        tmp_path,
        htpasswd,
        upstream,
        http_port,
        nginx_proxy_metrics_enabled=True,
        nginx_proxy_stub_status_listen=f"127.0.0.1:{status_port}",
        nginx_proxy_exporter_listen=f"127.0.0.1:{exporter_port}",
    )
    assert f"listen 127.0.0.1:{status_port};" in text
    default = render_role_template(
        "nginx_proxy",
        "prometheus-nginx-exporter.default.j2",
        tmp_path / "prometheus-nginx-exporter",
        tmp_path,
        {
            "nginx_proxy_stub_status_listen": f"127.0.0.1:{status_port}",
            "nginx_proxy_exporter_listen": f"127.0.0.1:{exporter_port}",
        },
    )
    args_line = next(line for line in default.splitlines() if line.startswith("ARGS="))
    args = shlex.split(shlex.split(args_line.split("=", 1)[1])[0])  # systemd splits $ARGS on spaces
    with SiteNginx(site, http_port):
        status, body = _get(status_port, "/stub_status")
        assert status == 200 and b"Active connections:" in body, body
        assert _get(status_port, "/")[0] == 404
        exporter = subprocess.Popen([EXPORTER, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline, metrics = time.monotonic() + 30, b""
            while time.monotonic() < deadline:
                try:
                    status, metrics = _get(exporter_port, "/metrics")
                    if status == 200:
                        break
                except OSError:
                    pass
                if exporter.poll() is not None:
                    pytest.fail(f"exporter exited: {exporter.stderr.read().decode()[-2000:]}")
                time.sleep(0.2)
            lines = metrics.decode().splitlines()
            assert "nginx_up 1" in lines, metrics[-2000:]
            assert any(line.startswith("nginx_connections_accepted ") for line in lines)
        finally:
            exporter.terminate()
            exporter.wait(timeout=10)


def _preflight(tmp_path: Path, variables: dict) -> subprocess.CompletedProcess:
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.import_role": {"name": "mlops.mlflow.nginx_proxy", "tasks_from": "preflight"}}],
    }
    base = {"nginx_proxy_users": [{"name": USER, "password": PASSWORD}], "nginx_proxy_metrics_enabled": True}
    return run_playbook([play], tmp_path, variables={**base, **variables}, check=True)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("nginx_proxy_exporter_listen", "0.0.0.0:9113"),
        ("nginx_proxy_exporter_listen", ":9113"),
        ("nginx_proxy_exporter_listen", "[::]:9113"),
        ("nginx_proxy_stub_status_listen", "8084"),
        ("nginx_proxy_stub_status_listen", "*:8084"),
    ],
)
def test_preflight_refuses_listening_on_all_interfaces(tmp_path, name, value):
    proc = _preflight(tmp_path, {name: value})
    assert proc.returncode != 0
    assert f"{name} must be host:port" in proc.stdout


@pytest.mark.parametrize("value", ["127.0.0.1:9113", "10.0.0.5:9113", "[::1]:9113", "proxy.internal:9113"])
def test_preflight_accepts_loopback_and_private_addresses(tmp_path, value):
    proc = _preflight(tmp_path, {"nginx_proxy_exporter_listen": value})
    assert proc.returncode == 0, json.loads(proc.stdout)["plays"][0]["tasks"][-1]
