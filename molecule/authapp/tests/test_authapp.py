"""MLflow's auth app behind nginx: how the two basic-auth layers line up, permissions, the admin
password the role set, the auth tables on the backend, a provided certificate and an open /health."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

PUBLIC = "https://mlflow.authapp.test"
DIRECT = "http://127.0.0.1:5000"
CA = "/etc/ssl/authapp/ca.crt"
ALICE = ("alice", "alice-password-0001")
BOB = ("bob", "bob-password-000001")
CAROL = ("carol", "carol-password-0001")  # in nginx's list only
ADMIN = ("admin", "authapp-admin-pass-0001")
SECRETS = ["authapp-admin-pass-0001", "authapp-flask-secret-key-0123456789abcdef", "authapp-db-secret-0123"]
REST_CALL = Path(__file__).parents[2] / "resources" / "rest_call.py"
PYTHON = "/opt/mlflow/venv/bin/python"


@pytest.fixture
def call(host):
    """call(method, url, user=(name, password), body=None) through the real TLS chain (CA-verified)."""
    payload = base64.b64encode(REST_CALL.read_bytes()).decode()
    host.check_output(f"echo {payload} | base64 -d > /root/rest_call.py")

    def _call(method: str, url: str, user: tuple[str, str] | None = None, body: dict | None = None) -> dict:
        args = [method, url, "--cafile", CA]
        if user:
            args += ["--user", user[0], "--password", user[1]]
        if body is not None:
            args += ["--json", json.dumps(body)]
        quoted = " ".join("'" + arg.replace("'", "'\\''") + "'" for arg in args)
        return json.loads(host.check_output(f"{PYTHON} /root/rest_call.py {quoted}"))

    return _call


def test_health_is_open_and_everything_else_needs_nginx_auth(call):
    assert call("GET", f"{PUBLIC}/health")["status"] == 200
    for path in ("/", "/api/2.0/mlflow/experiments/search?max_results=1", "/version"):
        denied = call("GET", PUBLIC + path)
        assert denied["status"] == 401
        assert denied["headers"]["www-authenticate"] == 'Basic realm="MLflow"'  # nginx's realm


def test_a_user_needs_the_same_password_in_both_layers(call):
    search = f"{PUBLIC}/api/2.0/mlflow/experiments/search?max_results=1"
    assert call("GET", search, ALICE)["status"] == 200
    # carol passes nginx, then mlflow (its own realm) refuses her: no account there.
    carol = call("GET", search, CAROL)
    assert carol["status"] == 401
    assert carol["headers"]["www-authenticate"] == 'Basic realm="mlflow"'
    # The admin exists only in mlflow: nginx stops it at the door.
    admin = call("GET", search, ADMIN)
    assert (admin["status"], admin["headers"]["www-authenticate"]) == (401, 'Basic realm="MLflow"')


def test_per_experiment_permissions(call):
    created = call("POST", f"{PUBLIC}/api/2.0/mlflow/experiments/create", ALICE, {"name": "alice-private"})
    assert created["status"] == 200, created
    experiment_id = created["body"]["experiment_id"]
    run = call("POST", f"{PUBLIC}/api/2.0/mlflow/runs/create", ALICE, {"experiment_id": experiment_id})
    run_id = run["body"]["run"]["info"]["run_id"]
    metric = {"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 1, "step": 0}

    # Default permission READ: bob reads alice's experiment but cannot write to it.
    assert call("GET", f"{PUBLIC}/api/2.0/mlflow/experiments/get?experiment_id={experiment_id}", BOB)["status"] == 200
    assert call("POST", f"{PUBLIC}/api/2.0/mlflow/runs/log-metric", BOB, metric)["status"] == 403

    # alice created it, so she manages it and can grant bob EDIT.
    grant = {"username": "bob", "resource_type": "experiment", "resource_id": experiment_id, "permission": "EDIT"}
    assert call("POST", f"{PUBLIC}/api/3.0/mlflow/users/permissions/grant", ALICE, grant)["status"] == 200
    assert call("POST", f"{PUBLIC}/api/2.0/mlflow/runs/log-metric", BOB, metric)["status"] == 200


def test_admin_password_is_the_roles_never_a_default(call):
    current = f"{DIRECT}/api/2.0/mlflow/users/current"
    me = call("GET", current, ADMIN)
    assert me["status"] == 200 and me["body"]["user"]["is_admin"] is True
    assert call("GET", current, ("admin", "password1234"))["status"] == 401


def test_real_client_logs_through_both_layers_with_the_provided_ca(mlflow_smoke):
    env = (
        f"MLFLOW_TRACKING_USERNAME={ALICE[0]} MLFLOW_TRACKING_PASSWORD={ALICE[1]} "
        f"MLFLOW_TRACKING_SERVER_CERT_PATH={CA} SMOKE_ARTIFACT_MB=5"
    )
    result = mlflow_smoke("both", "authapp", uri=PUBLIC, env=env)
    assert result["read"]["artifact_bytes"] == 5 * 1024 * 1024


def test_provided_certificate_is_served(host):
    served = host.check_output(
        "echo | openssl s_client -connect 127.0.0.1:443 -servername mlflow.authapp.test 2>/dev/null"
        " | openssl x509 -noout -issuer -subject"
    )
    assert "mlops authapp test CA" in served and "mlflow.authapp.test" in served
    assert not host.file("/etc/nginx/tls/mlflow.key").exists  # no self-signed pair was generated


def test_auth_tables_live_in_the_backend_database(host):
    psql = "runuser -u postgres -- psql -d mlflow -tAc"
    users = host.check_output(f"{psql} 'select username from users order by username'").split()
    assert users == ["admin", "alice", "bob"]
    assert host.check_output(f"{psql} 'select count(*) from alembic_version_auth'").strip() == "1"


def test_auth_secrets_stay_in_root_owned_files(host):
    config = host.file("/etc/mlflow/basic_auth.ini")
    assert (config.user, config.group, config.mode) == ("root", "mlflow", 0o640)
    assert "authapp-admin-pass-0001" in config.content_string
    env = host.file("/etc/mlflow/mlflow-server.env")
    assert (env.user, env.group, env.mode) == ("root", "mlflow", 0o640)
    exposed = host.check_output("ps -eo args") + host.check_output("systemctl show mlflow-server -p ExecStart")
    exposed += host.file("/etc/systemd/system/mlflow-server.service").content_string
    for secret in SECRETS:
        assert secret not in exposed
    assert "--app-name basic-auth" in exposed
