"""mlflow_server's optional flags, run for real: the role renders its command line and env file
(_server_args.j2, mlflow-server.env.j2), and the dev venv's mlflow runs exactly that on 127.0.0.1.

- mlflow_server_prometheus_dir: the server answers /metrics on its own port.
- mlflow_server_metrics_enabled: the same under <home>/prometheus, counting requests
  (mlflow_http_request_total); off by default (/metrics is 404).
- mlflow_server_gunicorn_opts: the server starts under gunicorn (mlflow refuses --allowed-hosts
  with --gunicorn-opts, so the role passes the allowlist through the env file) and still refuses
  a foreign Host header (DNS rebinding).
- mlflow_server_allowed_hosts: the server answers only the Host headers listed (not loopback's).
- mlflow_server_serve_artifacts: false turns the artifact proxy off (503 on mlflow-artifacts).
- mlflow_server_extra_env: values with quotes, $, backslashes and new lines reach the server
  process unchanged through the env file, read the way the start script reads it (/bin/sh).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import find_free_port, play_results, run_playbook
from support.mlflow_auth_server import stop
from support.role_mlflow_server import local_server_vars, shell_environ, start_server

pytestmark = pytest.mark.integration

ROLE = Path(__file__).resolve().parents[2] / "roles" / "mlflow_server"
TRICKY = 'it\'s "$HOME" \\back\\slash 100% %h `id`\nsecond line'


def _render(variables: dict, tmp_path: Path) -> tuple[list[str], Path]:
    """The role's server arguments (argv) and env file, rendered from the role's own variables."""
    templates = (ROLE / "templates" / "_server_args.j2", ROLE / "templates" / "mlflow-server.env.j2")
    play = {
        "name": "render the server command line and env file",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {"ansible.builtin.import_role": {"name": "mlops.mlflow.mlflow_server", "tasks_from": "preflight"}},
        ]
        + [
            {"ansible.builtin.debug": {"msg": f"{{{{ lookup('ansible.builtin.template', '{t}') }}}}"}}
            for t in templates
        ],
    }
    proc = run_playbook([play], tmp_path, variables=variables, check=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    args, env_file = (result["msg"] for result in play_results(json.loads(proc.stdout)["plays"][0])[-2:])
    path = tmp_path / "mlflow-server.env"
    path.write_text(env_file)
    return shlex.split(args), path


def _get(url: str, host_header: str = "") -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Host": host_header} if host_header else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def role_server(tmp_path):
    """role_server(**role_vars) -> (url, environ): mlflow started as the role would start it."""
    procs = []

    def _start(**role_vars):
        port = find_free_port()
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        variables = {
            **local_server_vars(port, home),
            **role_vars,
        }
        args, env_file = _render(variables, tmp_path)
        environ = shell_environ(env_file)
        log = tmp_path / "server.log"
        url = f"http://127.0.0.1:{port}"
        proc = start_server(args, environ, home, url, log)
        procs.append(proc)
        return url, environ, proc

    yield _start
    for proc in procs:
        stop(proc)


def test_prometheus_metrics_on_the_server_port(role_server, tmp_path):
    metrics = tmp_path / "prometheus"
    url, _, _ = role_server(mlflow_server_prometheus_dir=str(metrics))
    assert _get(f"{url}/api/2.0/mlflow/experiments/search?max_results=1")[0] == 200
    status, body = _get(f"{url}/metrics")
    assert status == 200
    assert "mlflow_exporter_info" in body
    assert metrics.is_dir()


def test_metrics_enabled_counts_requests_under_the_home(role_server, tmp_path):
    url, environ, _ = role_server(mlflow_server_metrics_enabled=True)
    assert environ.get("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "home" / "prometheus")) == str(
        tmp_path / "home" / "prometheus"
    )
    assert _get(f"{url}/api/2.0/mlflow/experiments/search?max_results=1")[0] == 200
    status, body = _get(f"{url}/metrics")
    assert status == 200
    samples = [line for line in body.splitlines() if line.startswith("mlflow_http_request_total{")]
    assert any('status="200"' in line and not line.endswith(" 0.0") for line in samples), body[-3000:]
    assert (tmp_path / "home" / "prometheus").is_dir()


def test_metrics_are_off_by_default(role_server):
    url, _, _ = role_server()
    assert _get(f"{url}/metrics")[0] == 404


def test_gunicorn_opts_run_gunicorn_and_keep_the_host_check(role_server):
    url, environ, proc = role_server(mlflow_server_gunicorn_opts="--timeout 120 --graceful-timeout 5")
    assert environ["MLFLOW_SERVER_ALLOWED_HOSTS"].startswith("localhost,localhost:*,127.0.0.1,127.0.0.1:*")
    children = subprocess.run(["pgrep", "-a", "-g", str(proc.pid)], capture_output=True, text=True).stdout
    assert "gunicorn" in children and "--timeout 120" in children, children
    path = "/api/2.0/mlflow/experiments/search?max_results=1"
    assert _get(url + path)[0] == 200
    assert _get(url + path, host_header="attacker.example")[0] == 403


def test_extra_env_reaches_the_server_verbatim(role_server):
    extra = {"MLOPS_TRICKY": TRICKY, "MLOPS_PLAIN": "plain", "MLOPS_DOLLAR": "$PATH", "MLOPS_BACKSLASH": "a\\"}
    _, _, proc = role_server(mlflow_server_extra_env=extra)
    raw = Path(f"/proc/{proc.pid}/environ").read_bytes().decode()
    environ = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
    for name, value in extra.items():
        assert environ[name] == value, name


def test_allowed_hosts_replace_the_default_list(role_server):
    url, _, _ = role_server(mlflow_server_allowed_hosts=["mlflow.example.org", "mlflow.example.org:*"])
    path = "/api/2.0/mlflow/experiments/search?max_results=1"
    assert _get(url + path, host_header="mlflow.example.org")[0] == 200
    assert _get(url + path, host_header="mlflow.example.org:8443")[0] == 200
    # 127.0.0.1:<port> is in the default list only.
    assert _get(url + path)[0] == 403


def test_serve_artifacts_off_disables_the_artifact_proxy(role_server):
    path = "/api/2.0/mlflow-artifacts/artifacts"
    on, _, _ = role_server()
    assert _get(on + path)[0] == 200
    off, _, _ = role_server(mlflow_server_serve_artifacts=False)
    status, body = _get(off + path)
    assert status == 503 and "--no-serve-artifacts" in body, body
