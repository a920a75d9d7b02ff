"""The split on-prem layout from the installed mlops.mlflow.site and a user's own inventory: five
hosts on one private network, laid out by the collection from the groups and each host's
mlops_private_address. The real mlflow client runs on mlflow1 and goes through nginx."""

import json
import os
import time
from pathlib import Path

import pytest
import testinfra
import yaml

# The host names and addresses come from the running scenario's own user/hosts.yml: onprem's, or
# trixie-onprem's (the same shape on Debian 13, its own names and network to run beside onprem).
_SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "onprem")
_INVENTORY = Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", Path(__file__).parent.parent)) / "user" / "hosts.yml"
PREFIX = f"mlops-{_SCENARIO}"
_ADDRESSES_BY_HOST = {
    host: hostvars["mlops_private_address"]
    for group in yaml.safe_load(_INVENTORY.read_text())["all"]["children"].values()
    for host, hostvars in group["hosts"].items()
}

testinfra_hosts = [f"ansible://{PREFIX}-mlflow1"]

ADDRESSES = {name: _ADDRESSES_BY_HOST[f"{PREFIX}-{name}"] for name in ("db", "s3", "mlflow1", "mlflow2")}
CLIENT_ENV = (
    "MLFLOW_TRACKING_USERNAME=alice MLFLOW_TRACKING_PASSWORD=onprem-alice-pass-01 MLFLOW_TRACKING_INSECURE_TLS=true"
)
PROXY = f"https://{PREFIX}-proxy"


@pytest.fixture(scope="module")
def onprem(request):
    """onprem("db") -> the testinfra host mlops-onprem-db (mlops-trixie-onprem-db in trixie-onprem)."""
    inventory = request.config.option.ansible_inventory
    return lambda name: testinfra.get_host(f"ansible://{PREFIX}-{name}", ansible_inventory=inventory)


def _wait_for_health(host, address: str, timeout: int = 120) -> None:
    probe = (
        'python3 -c "import urllib.request as u; '
        f"r = u.Request('http://{address}:5000/health', headers={{'Host': 'localhost'}}); "
        'u.urlopen(r, timeout=5)"'
    )
    deadline = time.monotonic() + timeout
    while host.run(probe).rc != 0:
        assert time.monotonic() < deadline, f"mlflow on {address} did not come back"
        time.sleep(2)


def _listeners(host) -> set[str]:
    return {line.split()[3] for line in host.check_output("ss -Hltn").splitlines()}


HOSTS = {f"{PREFIX}-{name}" for name in ("db", "s3", "mlflow1", "mlflow2", "proxy")}


def test_the_users_runs_converged_every_host_then_changed_nothing(user_runs):
    assert set(user_runs.recap("converge")) == HOSTS
    assert all(counts["failed"] == 0 and counts["changed"] > 0 for counts in user_runs.recap("converge").values())
    assert user_runs.changed_tasks("reconverge") == []
    for run in ("reconverge", "check"):
        recap = user_runs.recap(run)
        assert set(recap) == HOSTS
        assert all(counts["changed"] == counts["failed"] == counts["unreachable"] == 0 for counts in recap.values()), (
            run
        )


def test_services_listen_on_their_private_address(onprem):
    assert {"127.0.0.1:5432", f"{ADDRESSES['db']}:5432"} <= _listeners(onprem("db"))
    assert f"{ADDRESSES['s3']}:8333" in _listeners(onprem("s3"))
    for name in ("mlflow1", "mlflow2"):
        listeners = _listeners(onprem(name))
        assert f"{ADDRESSES[name]}:5000" in listeners
        assert not [addr for addr in listeners if addr.endswith(":5000") and addr != f"{ADDRESSES[name]}:5000"]


def test_postgres_admits_exactly_the_mlflow_servers(onprem):
    db = onprem("db")
    # PostgreSQL 15 on bookworm, 17 on trixie: the one cluster the role made.
    (hba,) = db.check_output("ls /etc/postgresql/*/main/pg_hba.conf").split()
    rules = [line.split() for line in db.file(hba).content_string.splitlines() if line.startswith("host")]
    networks = {rule[3] for rule in rules}
    assert networks == {"127.0.0.1/32", "::1/128", f"{ADDRESSES['mlflow1']}/32", f"{ADDRESSES['mlflow2']}/32"}
    assert {rule[-1] for rule in rules} == {"scram-sha-256"}


def test_each_server_is_wired_to_the_shared_stores(onprem):
    for name in ("mlflow1", "mlflow2"):
        env = onprem(name).file("/etc/mlflow/mlflow-server.env").content_string
        assert f"@{ADDRESSES['db']}:5432/mlflow'" in env
        assert f"MLFLOW_S3_ENDPOINT_URL='http://{ADDRESSES['s3']}:8333'" in env
        assert "MLFLOW_ARTIFACTS_DESTINATION='s3://mlflow/artifacts'" in env


def test_nginx_balances_over_both_servers(onprem):
    site = onprem("proxy").file("/etc/nginx/sites-available/mlflow.conf").content_string
    for name in ("mlflow1", "mlflow2"):
        assert f"server {ADDRESSES[name]}:5000 max_fails=3 fail_timeout=10s;" in site
    assert "proxy_next_upstream error timeout http_502 http_503;" in site
    assert "proxy_next_upstream_tries 2;" in site


def test_real_client_through_nginx_into_the_bucket(host, mlflow_smoke):
    result = mlflow_smoke("both", "onprem", uri=PROXY, env=CLIENT_ENV)
    run_id = result["written"]["run_id"]
    listing = host.check_output(
        '/opt/mlflow/venv/bin/python -c "import boto3, json; from botocore.config import Config; '
        f"s3 = boto3.client('s3', endpoint_url='http://{ADDRESSES['s3']}:8333', aws_access_key_id='ONPREMMLFLOW1', "
        "aws_secret_access_key='onprem-mlflow-secret-01', region_name='us-east-1', "
        "config=Config(s3={'addressing_style': 'path'})); "
        "print(json.dumps([o['Key'] for o in s3.list_objects_v2(Bucket='mlflow').get('Contents', [])]))\""
    )
    assert any(run_id in key and key.endswith("/weights.bin") for key in json.loads(listing))
    assert result["read"]["model_versions"] == 1


@pytest.mark.parametrize("down", ["mlflow1", "mlflow2"])
def test_proxy_answers_with_either_server_down(host, onprem, mlflow_smoke, down):
    # With one server stopped, everything (writes included) must be served by the other:
    # each server alone handles the whole client session.
    stopped = onprem(down)
    stopped.check_output("systemctl stop mlflow-server")
    try:
        result = mlflow_smoke("both", f"onprem-without-{down}", uri=PROXY, env=f"SMOKE_ARTIFACT_MB=1 {CLIENT_ENV}")
        assert result["read"]["model_versions"] == 1
        # And it can read what both wrote together before.
        assert mlflow_smoke("read", "onprem", uri=PROXY, env=CLIENT_ENV)["read"]["model_versions"] == 1
    finally:
        stopped.check_output("systemctl start mlflow-server")
        _wait_for_health(stopped, ADDRESSES[down])
