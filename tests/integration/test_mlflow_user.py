"""mlops.mlflow.mlflow_user for real (ansible-playbook) against a real `mlflow server --app-name basic-auth`.

The json stdout callback hides a result's `action` key (see test_htpasswd_nginx.py), so these
tests read `changed`, `is_admin` and the diff, and check the server's own view of each user.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest
from support.mlflow_auth_server import mlflow_auth_server  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


def status_as(server, username: str, password: str, path: str = "/api/2.0/mlflow/users/current") -> int:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    request = urllib.request.Request(server.url + path, headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def server_user(server, name: str) -> dict | None:
    token = base64.b64encode(f"{server.admin_username}:{server.admin_password}".encode()).decode()
    request = urllib.request.Request(
        f"{server.url}/api/2.0/mlflow/users/get?username={name}", headers={"Authorization": f"Basic {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)["user"]
    except urllib.error.HTTPError as exc:
        assert exc.code == 404, exc.read()
        return None


def args(server, **extra) -> dict:
    return dict(
        tracking_uri=server.url,
        admin_username=server.admin_username,
        admin_password=server.admin_password,
        **extra,
    )


def assert_secret_free(result, *secrets):
    text = result["_stdout"] + result["_stderr"]
    for secret in secrets:
        assert secret not in text


def test_create_then_unchanged(run_module, mlflow_auth_server):  # noqa: F811
    server = mlflow_auth_server
    password = "alice-password-0001"
    first = run_module("mlflow_user", args(server, name="alice", password=password), diff=True)
    assert first["changed"] is True and not first.get("failed"), first
    assert first["diff"]["after"]["exists"] is True
    assert status_as(server, "alice", password) == 200
    assert server_user(server, "alice")["is_admin"] is False

    again = run_module("mlflow_user", args(server, name="alice", password=password))
    assert again["changed"] is False and not again.get("failed"), again
    assert_secret_free(first, password, server.admin_password)
    assert_secret_free(again, password, server.admin_password)


def test_check_mode_creates_nothing(run_module, mlflow_auth_server):  # noqa: F811
    server = mlflow_auth_server
    result = run_module("mlflow_user", args(server, name="ghost", password="ghost-password-001"), check=True)
    assert result["changed"] is True and not result.get("failed"), result
    assert server_user(server, "ghost") is None


def test_password_rotation(run_module, mlflow_auth_server):  # noqa: F811
    server = mlflow_auth_server
    old, new = "bob-password-00001", "bob-password-00002"
    assert run_module("mlflow_user", args(server, name="bob", password=old))["changed"] is True

    checked = run_module("mlflow_user", args(server, name="bob", password=new), check=True)
    assert checked["changed"] is True
    assert status_as(server, "bob", old) == 200, "check mode must not rotate"

    rotated = run_module("mlflow_user", args(server, name="bob", password=new), diff=True)
    assert rotated["changed"] is True and not rotated.get("failed"), rotated
    assert rotated["diff"]["after"]["password_changed"] is True
    assert status_as(server, "bob", old) == 401
    assert status_as(server, "bob", new) == 200
    assert_secret_free(rotated, old, new)

    on_create = run_module("mlflow_user", args(server, name="bob", password=old, update_password="on_create"))
    assert on_create["changed"] is False
    assert status_as(server, "bob", new) == 200


def test_admin_flag_and_removal(run_module, mlflow_auth_server):  # noqa: F811
    server = mlflow_auth_server
    password = "carol-password-001"
    made = run_module("mlflow_user", args(server, name="carol", password=password, admin=True))
    assert made["changed"] is True and made["is_admin"] is True
    assert server_user(server, "carol")["is_admin"] is True

    demoted = run_module("mlflow_user", args(server, name="carol", password=password, admin=False))
    assert demoted["changed"] is True and demoted["is_admin"] is False
    assert server_user(server, "carol")["is_admin"] is False

    untouched = run_module("mlflow_user", args(server, name="carol", password=password))
    assert untouched["changed"] is False and untouched["is_admin"] is False

    removed = run_module("mlflow_user", args(server, name="carol", state="absent"))
    assert removed["changed"] is True
    assert server_user(server, "carol") is None
    assert status_as(server, "carol", password) == 401
    assert run_module("mlflow_user", args(server, name="carol", state="absent"))["changed"] is False


def test_admin_checks_its_own_password(run_module, mlflow_auth_server):  # noqa: F811
    server = mlflow_auth_server
    same = run_module("mlflow_user", args(server, name="admin", password=server.admin_password))
    assert same["changed"] is False and same["is_admin"] is True, same


def test_wrong_admin_password_fails_clearly(run_module, mlflow_auth_server):  # noqa: F811
    server = mlflow_auth_server
    wrong = "not-the-admin-password-1"
    result = run_module(
        "mlflow_user",
        dict(
            tracking_uri=server.url,
            admin_username="admin",
            admin_password=wrong,
            name="dave",
            password="dave-password-0001",
        ),
    )
    assert result.get("failed") is True
    assert "rejected the admin credentials" in result["msg"]
    assert_secret_free(result, wrong, "dave-password-0001")
    assert server_user(server, "dave") is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"name": "erin", "password": "short"}, "at least 12 characters"),
        ({"name": "erin"}, "password is required"),
        ({"name": "er:in", "password": "erin-password-0001"}, "without ':'"),
        ({"name": "admin", "state": "absent"}, "refusing to delete the admin"),
    ],
)
def test_bad_input_fails_before_any_request(run_module, mlflow_auth_server, extra, message):  # noqa: F811
    server = mlflow_auth_server
    result = run_module("mlflow_user", args(server, **extra))
    assert result.get("failed") is True and message in result["msg"], result
    assert server_user(server, "erin") is None
    assert server_user(server, "admin") is not None


def test_unreachable_server_fails_clearly(run_module, free_port):
    result = run_module(
        "mlflow_user",
        dict(
            tracking_uri=f"http://127.0.0.1:{free_port}",
            admin_username="admin",
            admin_password="whatever-admin-pass",
            name="frank",
            password="frank-password-001",
        ),
    )
    assert result.get("failed") is True and "cannot reach" in result["msg"], result
    assert_secret_free(result, "whatever-admin-pass", "frank-password-001")
