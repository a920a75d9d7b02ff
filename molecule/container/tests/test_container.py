"""mlflow_server in container mode: podman under systemd, non-root, secrets out of inspect/ps,
data kept from the venv install it replaced, the real client through nginx, back after a reboot."""

from __future__ import annotations

import base64
import json

ALICE_ENV = (
    "MLFLOW_TRACKING_USERNAME=alice MLFLOW_TRACKING_PASSWORD=alice-password-0001 MLFLOW_TRACKING_INSECURE_TLS=true"
)
SECRETS = ["container-admin-pass-0001", "container-flask-secret-key-0123456789abcdef", "alice-password-0001"]


def _container(host) -> dict:
    return json.loads(host.check_output("podman inspect mlflow-server"))[0]


def test_unit_runs_the_built_image_as_the_mlflow_user(host):
    assert host.service("mlflow-server").is_running
    assert host.service("mlflow-server").is_enabled
    info = _container(host)
    assert info["State"]["Running"] is True
    assert info["ImageName"].startswith("localhost/mlops-mlflow:3.17.2-")
    uid = host.user("mlflow").uid
    assert info["Config"]["User"] == f"{uid}:{host.group('mlflow').gid}"
    server = host.check_output("ps -eo user:20,args | grep '[m]lflow server' | head -1")
    assert server.split()[0] == "mlflow"
    assert host.socket("tcp://127.0.0.1:5000").is_listening
    assert not host.socket("tcp://0.0.0.0:5000").is_listening


def test_secrets_stay_out_of_inspect_and_ps(host):
    exposed = host.check_output("podman inspect mlflow-server") + host.check_output("ps -eo args")
    exposed += host.file("/etc/systemd/system/mlflow-server.service").content_string
    for secret in SECRETS:
        assert secret not in exposed
    env = host.file("/etc/mlflow/mlflow-server.env")
    assert (env.user, env.group, env.mode) == ("root", "mlflow", 0o640)


def test_switch_from_venv_kept_the_data(host, mlflow_smoke):
    # Logged by the venv-mode server in prepare; read back from the container over loopback.
    result = mlflow_smoke("read", "venv-era", env=ALICE_ENV.rsplit(" ", 1)[0] + " SMOKE_ARTIFACT_MB=2")
    assert result["read"]["artifact_bytes"] == 2 * 1024 * 1024
    # One server only, in the container: the venv's process is gone. (The image's venv has the
    # same path, so tell them apart by cgroup: podman puts its containers under libpod.)
    servers = host.check_output(
        "pgrep -f '^/opt/mlflow/venv/bin/python[0-9.]* /opt/mlflow/venv/bin/mlflow server'"
    ).split()
    assert len(servers) == 1, servers
    assert "libpod-" in host.file(f"/proc/{servers[0]}/cgroup").content_string


def test_real_client_through_nginx_and_back_after_reboot(host, mlflow_smoke, reboot, health):
    env = ALICE_ENV + " SMOKE_ARTIFACT_MB=5"
    written = mlflow_smoke("write", "container", uri="https://127.0.0.1", env=env)
    reboot()
    health()
    read = mlflow_smoke("read", "container", uri="https://127.0.0.1", env=env)
    assert read["read"]["run_id"] == written["written"]["run_id"]
    assert _container(host)["State"]["Running"] is True


def test_auth_app_runs_in_the_container(host, http):
    assert http("https://127.0.0.1/api/2.0/mlflow/users/current", "alice", "alice-password-0001")["status"] == 200
    assert "--app-name basic-auth" in host.check_output("ps -eo args")


# mlflow_server_extra_env of molecule.yml: sourced by /bin/sh in the container's entry point.
EXTRA_ENV = {"MLOPS_TRICKY": 'it\'s "$HOME" \\back\\slash 100% %h `id`\nsecond line', "MLOPS_PLAIN": "plain-value"}


def _server_environ(host) -> dict:
    pid = host.check_output(
        "pgrep -f '^/opt/mlflow/venv/bin/python[0-9.]* /opt/mlflow/venv/bin/mlflow server' | head -1"
    ).strip()
    raw = host.check_output(f"base64 -w0 /proc/{pid}/environ")
    pairs = base64.b64decode(raw).decode().split("\0")
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def test_extra_env_reaches_the_server_verbatim(host):
    environ = _server_environ(host)
    for name, value in EXTRA_ENV.items():
        assert environ.get(name) == value, name


def test_prometheus_metrics_on_the_server_port(host):
    probe = (
        "import base64, urllib.request; "
        "r = urllib.request.Request('http://127.0.0.1:5000/metrics', headers={'Authorization': 'Basic ' + "
        "base64.b64encode(b'admin:container-admin-pass-0001').decode()}); "
        "print(urllib.request.urlopen(r, timeout=30).read().decode())"
    )
    body = host.check_output(f'python3 -c "{probe}"')
    assert "mlflow_exporter_info" in body
    assert host.file("/var/lib/mlflow/prometheus").is_directory
