"""Single sign-on from the user's inventory (mlops_auth: oidc), through nginx and mlflow-oidc-auth,
with a real OpenID provider: each team member as README promises, every path closed without
credentials, and the user's runs (converge, again, --check) clean and free of the vault's secrets."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parent.parent / "resources" / "oidc_client.py"
VENV_PYTHON = "/opt/mlflow/venv/bin/python"
ALICE, RITA, OTTO = "alice@example.com", "rita@example.com", "otto@example.com"


@pytest.fixture(scope="module")
def client(host):
    payload = base64.b64encode(CLIENT.read_bytes()).decode()
    host.check_output(f"echo {payload} | base64 -d > /root/oidc_client.py")

    def _run(*args: str) -> dict:
        result = host.run(f"{VENV_PYTHON} /root/oidc_client.py {' '.join(args)}")
        assert result.rc == 0, f"oidc_client {args} failed: {result.stdout}\n{result.stderr}"
        return json.loads(result.stdout.strip().splitlines()[-1])

    return _run


def test_converge_then_nothing_changes(user_runs):
    assert user_runs.recap("converge")["mlops-oidc"]["changed"] > 0
    assert user_runs.changed_tasks("reconverge") == []
    check = user_runs.recap("check")["mlops-oidc"]
    assert (check["changed"], check["failed"], check["unreachable"]) == (0, 0, 0)


def test_no_secret_in_the_run_output(user_runs):
    vault = (Path(__file__).parent.parent / "user" / "group_vars" / "all" / "vault.yml").read_text()
    secrets = [line.split(":", 1)[1].strip() for line in vault.splitlines() if line.startswith("mlops_")]
    assert len(secrets) == 7
    for run in ("converge", "reconverge", "check"):
        log = user_runs.log(run)
        assert not [value for value in secrets if value in log], run


def test_every_path_is_closed_without_credentials(client):
    for path, (status, location) in client("closed").items():
        if path == "GET /metrics":
            assert status == 404, path  # mlflow's metrics are never on the public site
        elif status == 302:
            assert "/login" in location or "/oauth2/authorize" in location, (path, location)
        else:
            assert status == 401, (path, status)


def test_a_team_member_logs_in_at_the_provider_and_sees_the_experiments(client):
    seen = client("login", ALICE)
    assert seen["provider_url"].startswith("http://127.0.0.1:9400/oauth2/authorize")
    assert seen["current_user"] == 200 and seen["experiments"] == 200, seen


def test_a_token_logs_a_run_with_the_mlflow_client(client):
    seen = client("token-run", ALICE)
    assert seen["run"] == 200 and seen["loss"] == 0.25, seen


def test_the_read_only_group_reads_but_cannot_create(client):
    seen = client("create-experiment", RITA)
    assert seen["search"] == 200 and seen["create"] == 403, seen


def test_the_edit_group_can_create(client):
    assert client("create-experiment", ALICE)["create"] == 200


def test_a_user_outside_the_allowed_groups_is_refused(client):
    seen = client("login", OTTO)
    assert seen["current_user"] == 401 and seen["experiments"] in (401, 302), seen


def test_bad_and_deleted_tokens_get_401(client):
    seen = client("bad-tokens", ALICE)
    assert seen == {"garbage": 401, "bearer": 401, "before_delete": 200, "after_delete": 401}, seen
