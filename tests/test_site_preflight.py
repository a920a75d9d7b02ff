"""mlops.mlflow.site, installed, from a user's own inventory: the layout step refuses an incomplete
layout, a missing secret or a --limit that leaves out a needed host before any host is contacted,
and hands each host the role variables of its groups, below anything the user set.

Every host sits at 127.0.0.1 port 9 behind SSH (nothing listens there): a task that touched one
would come back unreachable, at once. The failing cases must stop in the layout play, with a
message naming what the user must write, and no later play may start.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, play_results, run_user_playbook

EXAMPLES = REPO_ROOT / "docs" / "examples"
LAYOUT_PLAY = "Check the inventory describes a complete layout"
ADDRESSES = {
    "db": "10.9.0.11",
    "s3": "10.9.0.12",
    "mlflow1": "10.9.0.21",
    "mlflow2": "10.9.0.22",
    "proxy": "10.9.0.30",
    "mon": "10.9.0.40",
}
UNREACHED = "ansible_host=127.0.0.1 ansible_port=9"
SECRETS = {
    "mlops_db_password": "user-db-secret-0001",
    "mlops_s3_admin_access_key": "USERADMIN01",
    "mlops_s3_admin_secret_key": "user-admin-secret-001",
    "mlops_s3_mlflow_access_key": "USERMLFLOW1",
    "mlops_s3_mlflow_secret_key": "user-mlflow-secret-01",
    "mlops_users": [{"name": "alice", "password": "user-alice-pass-01"}],
}
AUTH = {
    "mlops_mlflow_auth": True,
    "mlops_mlflow_admin_password": "user-admin-pass-01",
    "mlops_mlflow_secret_key": "k" * 40,
}


def _inventory(
    tmp_path: Path, groups: dict[str, list[str]], private: bool = True, extra: str = "", secrets: dict | None = None
) -> Path:
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    lines = []
    for group, hosts in groups.items():
        lines.append(f"[{group}]")
        for name in hosts:
            address = f" mlops_private_address={ADDRESSES[name]}" if private else ""
            lines.append(f"{name} {UNREACHED}{address}")
    lines += ["[all:vars]", "ansible_connection=ssh", extra]
    (inventory / "hosts.ini").write_text("\n".join(lines) + "\n")
    (inventory / "group_vars" / "all" / "vault.yml").write_text(yaml.safe_dump(SECRETS if secrets is None else secrets))
    return inventory


def _failed_messages(report: dict) -> list[str]:
    assert [play["play"]["name"] for play in report["plays"]] == [LAYOUT_PLAY]
    failed = [result for result in play_results(report["plays"][0]) if result.get("failed")]
    assert failed
    # A looped check reports per item, under "results".
    return [item.get("msg", "") for item in failed[0].get("results", [failed[0]]) if item.get("failed")]


def _nothing_touched(report: dict) -> None:
    assert not any(result.get("changed") for play in report["plays"] for result in play_results(play))
    assert all(stats["unreachable"] == 0 and stats["changed"] == 0 for stats in report["stats"].values())


def _derived(report: dict) -> dict[str, dict]:
    """host -> {role variable: value} from the layout play's plain set_fact loop."""
    (play,) = [play for play in report["plays"] if play["play"]["name"] == LAYOUT_PLAY]
    (task,) = [
        task for task in play["tasks"] if task["task"]["name"].endswith("Set the role variables of this host's groups")
    ]
    return {
        host: {item["item"]["key"]: item["item"]["value"] for item in result.get("results", [])}
        for host, result in task["hosts"].items()
    }


SPLIT = {"mlflow_db": ["db"], "mlflow_object_store": ["s3"], "mlflow_server": ["mlflow1", "mlflow2"]}
ONE = ["mlflow1"]
ALL_IN_ONE = {"mlflow_db": ONE, "mlflow_object_store": ONE, "mlflow_server": ONE, "mlflow_proxy": ONE}
CASES = [
    ("no-server", {"mlflow_db": ["db"], "mlflow_proxy": ["proxy"]}, True, "", "mlflow_server"),
    ("no-proxy", SPLIT, True, "", "mlflow_proxy"),
    (
        "two-servers-no-db",
        {"mlflow_object_store": ["s3"], "mlflow_server": ["mlflow1", "mlflow2"], "mlflow_proxy": ["proxy"]},
        True,
        "",
        "mlflow_db",
    ),
    (
        "two-servers-no-s3",
        {"mlflow_db": ["db"], "mlflow_server": ["mlflow1", "mlflow2"], "mlflow_proxy": ["proxy"]},
        True,
        "",
        "mlflow_object_store",
    ),
    ("db-and-uri", {**SPLIT, "mlflow_proxy": ["proxy"]}, True, "mlops_db_uri=postgresql://u:p@h/db", "mlops_db_uri"),
    ("split-without-addresses", {**SPLIT, "mlflow_proxy": ["proxy"]}, False, "", "mlops_private_address"),
]


@pytest.fixture
def site(installed_collection):
    return lambda inventory, *args: run_user_playbook(installed_collection, "mlops.mlflow.site", inventory, *args)


@pytest.mark.parametrize(("groups", "private", "extra", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_incomplete_layout_stops_in_preflight_naming_what_is_missing(site, groups, private, extra, named, tmp_path):
    rc, report = site(_inventory(tmp_path, groups, private, extra))
    assert rc != 0
    messages = _failed_messages(report)
    assert messages
    assert all(named in message for message in messages), messages
    _nothing_touched(report)


OIDC = {
    "mlops_auth": "oidc",
    "mlops_oidc_issuer": "https://login.team.example/realms/ml",
    "mlops_oidc_client_id": "team-mlflow",
    "mlops_oidc_client_secret": "user-oidc-client-secret-01",
    "mlops_mlflow_secret_key": "o" * 40,
}
LEFT_OUT = [(name, {}) for name in SECRETS] + [
    ("mlops_mlflow_admin_password", AUTH),
    ("mlops_mlflow_secret_key", AUTH),
    ("mlops_oidc_client_secret", OIDC),
    ("mlops_mlflow_secret_key", OIDC),
]


@pytest.mark.parametrize(
    ("secret", "knobs"),
    LEFT_OUT,
    ids=[f"{name}{'-' + str(knobs.get('mlops_auth', 'auth')) if knobs else ''}" for name, knobs in LEFT_OUT],
)
def test_each_secret_left_out_stops_before_any_change_naming_it(site, secret, knobs, tmp_path):
    secrets = {name: value for name, value in {**SECRETS, **knobs}.items() if name != secret}
    rc, report = site(_inventory(tmp_path, ALL_IN_ONE, secrets=secrets))
    assert rc != 0
    (message,) = _failed_messages(report)
    assert f"Define {secret} in your inventory" in message
    # Named as the user writes it, never as a role's internal variable; no secret echoed.
    assert not [word for word in ("postgres_db_password", "object_store_", "nginx_proxy_users") if word in message]
    secret_values = [
        *SECRETS.values(),
        *AUTH.values(),
        OIDC["mlops_oidc_client_secret"],
        OIDC["mlops_mlflow_secret_key"],
    ]
    assert not [value for value in secret_values if isinstance(value, str) and value in message]
    _nothing_touched(report)


def test_oidc_needs_no_nginx_users_and_hands_each_layer_its_part(site, tmp_path):
    # A team signing in at its identity provider: no mlops_users, the client secret in the vault.
    secrets = {name: value for name, value in {**SECRETS, **OIDC}.items() if name != "mlops_users"}
    inventory = _inventory(tmp_path, ALL_IN_ONE, secrets=secrets, extra="mlops_public_https_port=8443")
    # A tag no role task has: the layout play (tagged always) runs, no host is contacted (the roles'
    # own OIDC preflight reads the provider from the server host, which this test does not reach).
    rc, report = site(inventory, "--tags", "mlops-layout-only")
    assert rc == 0, report["stats"]
    _nothing_touched(report)
    derived = _derived(report)["mlflow1"]
    assert derived["mlflow_server_auth_type"] == "oidc" and derived["mlflow_server_auth_enabled"] is True
    assert derived["nginx_proxy_auth"] == "oidc"
    assert derived["mlflow_server_auth_oidc_issuer"] == OIDC["mlops_oidc_issuer"]
    assert derived["mlflow_server_auth_oidc_client_id"] == "team-mlflow"
    assert derived["mlflow_server_auth_oidc_public_url"] == "https://mlflow1:8443"
    assert "nginx_proxy_users" not in derived
    # What the roles' checks name instead of their variables: the knobs this user wrote.
    origins = derived["mlops_layout_origins"]
    assert origins["mlflow_server_auth_oidc_issuer"] == "mlops_oidc_issuer"
    assert origins["mlflow_server_auth_oidc_client_secret"] == "mlops_oidc_client_secret"
    assert origins["postgres_db_password"] == "mlops_db_password"
    assert origins["nginx_proxy_public_https_port"] == "mlops_public_https_port"
    # The client secret goes with the secrets (no_log), never in the plain loop's output.
    assert OIDC["mlops_oidc_client_secret"] not in str(report["plays"])


@pytest.mark.parametrize("knob", ["mlops_oidc_issuer", "mlops_oidc_client_id"])
def test_oidc_without_its_provider_stops_in_the_layout_step_naming_the_knob(site, knob, tmp_path):
    secrets = {name: value for name, value in {**SECRETS, **OIDC}.items() if name != knob}
    rc, report = site(_inventory(tmp_path, ALL_IN_ONE, secrets=secrets))
    assert rc != 0
    messages = _failed_messages(report)
    assert any(f"set {knob}" in message for message in messages), messages
    _nothing_touched(report)


def test_a_monitoring_host_is_all_it_takes_to_turn_the_exporters_on(site, tmp_path):
    groups = {**SPLIT, "mlflow_proxy": ["proxy"], "mlflow_monitoring": ["mon"]}
    rc, report = site(_inventory(tmp_path, groups), "--tags", "mlops-layout-only")
    assert rc == 0, report["stats"]
    _nothing_touched(report)
    derived = _derived(report)
    assert derived["db"]["postgres_exporter_listen"] == "10.9.0.11:9187"
    assert derived["s3"]["object_store_metrics_address"] == "10.9.0.12"
    assert derived["mlflow2"]["mlflow_server_metrics_enabled"] is True
    assert derived["proxy"]["nginx_proxy_exporter_listen"] == "10.9.0.30:9113"
    assert {host: derived[host]["common_node_exporter_listen"] for host in ("db", "mlflow1")} == {
        "db": "10.9.0.11:9100",
        "mlflow1": "10.9.0.21:9100",
    }
    # Without mlops_private_address a monitored host stops the run, named.
    rc, report = site(_inventory(tmp_path / "no-address", {**ALL_IN_ONE, "mlflow_monitoring": ["mon"]}, private=False))
    assert rc != 0
    assert any("mlflow1 is reached by other hosts" in message for message in _failed_messages(report))


@pytest.mark.parametrize("example", ["pi", "onprem", "aws"])
def test_example_inventories_pass_the_layout_step_as_copied(site, example, tmp_path):
    # What README tells a user: copy the example, fill in the vault file, run.
    inventory = tmp_path / example
    shutil.copytree(EXAMPLES / example, inventory)
    vault = inventory / "group_vars" / "all"
    (vault / "vault.yml.example").rename(vault / "vault.yml")
    hosts = inventory / "hosts.ini"
    hosts.write_text(hosts.read_text().replace("ansible_host=", "example_host=") + f"\n[all:vars]\n{UNREACHED}\n")
    rc, report = site(inventory, "--tags", "mlops_preflight")
    results = play_results(report["plays"][0])
    assert results and not [result for result in results if result.get("failed")], results
    assert rc == 0, report["stats"]
    _nothing_touched(report)


def test_pi_example_gets_the_pi_profile(site, tmp_path):
    inventory = tmp_path / "pi"
    shutil.copytree(EXAMPLES / "pi", inventory)
    (inventory / "group_vars/all/vault.yml.example").rename(inventory / "group_vars/all/vault.yml")
    hosts = inventory / "hosts.ini"
    hosts.write_text(hosts.read_text().replace("ansible_host=raspberrypi.local", UNREACHED))
    _, report = site(inventory, "--tags", "mlops_preflight")
    derived = _derived(report)["mlflow-pi"]
    assert derived["mlflow_server_workers"] == 1
    assert derived["postgres_shared_buffers"] == "32MB"


def test_role_variables_the_user_sets_win_wherever_they_are_set(site, tmp_path):
    inventory = _inventory(tmp_path, {**SPLIT, "mlflow_proxy": ["proxy"]})
    (inventory / "group_vars" / "mlflow_server").mkdir()
    (inventory / "group_vars" / "mlflow_server" / "port.yml").write_text("mlflow_server_port: 5001\n")
    (inventory / "host_vars").mkdir()
    (inventory / "host_vars" / "mlflow2.yml").write_text("mlflow_server_host: 0.0.0.0\n")
    (inventory / "group_vars" / "all" / "proxy.yml").write_text("nginx_proxy_server_name: mlflow.team.example\n")
    rc, report = site(inventory, "--tags", "mlops_preflight")
    assert rc == 0, report["stats"]
    derived = _derived(report)
    assert derived["mlflow1"]["mlflow_server_host"] == ADDRESSES["mlflow1"]
    assert "mlflow_server_host" not in derived["mlflow2"]
    # The proxy reads what the servers will use: their port, and mlflow2's wildcard bind on its address.
    assert derived["proxy"]["nginx_proxy_upstreams"] == [f"{ADDRESSES['mlflow1']}:5001", f"{ADDRESSES['mlflow2']}:5001"]
    assert "nginx_proxy_server_name" not in derived["proxy"]
    assert derived["db"]["postgres_client_networks"] == [f"{ADDRESSES['mlflow1']}/32", f"{ADDRESSES['mlflow2']}/32"]


AWS = {"mlflow_server": ["mlflow1"], "mlflow_proxy": ["mlflow1"], "mlflow_s3_iam": ["proxy"]}
AWS_SECRETS = {"mlops_users": SECRETS["mlops_users"], "mlops_s3_bucket": "team-mlflow-artifacts"}


def test_limit_without_the_host_that_hands_over_the_s3_key_stops_naming_it(site, tmp_path):
    rc, report = site(_inventory(tmp_path, AWS, secrets=AWS_SECRETS), "--limit", "mlflow1")
    assert rc != 0
    (message,) = _failed_messages(report)
    assert "add proxy to --limit" in message
    _nothing_touched(report)


@pytest.mark.parametrize(
    ("limit", "extra"),
    [("mlflow1:proxy", []), ("mlflow1", ["-e", "mlops_s3_instance_role=mlflow-ec2"])],
    ids=["with-the-s3-iam-host", "instance-profile"],
)
def test_limit_that_keeps_what_the_run_needs_passes(site, limit, extra, tmp_path):
    rc, report = site(
        _inventory(tmp_path, AWS, secrets=AWS_SECRETS), "--limit", limit, "--tags", "mlops_preflight", *extra
    )
    results = play_results(report["plays"][0])
    assert not [result for result in results if result.get("failed")], results
    assert rc == 0, report["stats"]


def test_limit_to_one_host_of_the_split_layout_derives_what_it_needs(site, tmp_path):
    rc, report = site(
        _inventory(tmp_path, {**SPLIT, "mlflow_proxy": ["proxy"]}), "--limit", "proxy", "--tags", "mlops_preflight"
    )
    assert rc == 0, report["stats"]
    assert _derived(report)["proxy"]["nginx_proxy_upstreams"] == [
        f"{ADDRESSES['mlflow1']}:5000",
        f"{ADDRESSES['mlflow2']}:5000",
    ]
