"""site.yml's first play refuses an incomplete layout before any host is contacted.

Every host of these inventories sits at a documentation (TEST-NET-2) address behind SSH: a
task that touched one would come back unreachable. The failing cases must stop in the
preflight play, with a message naming what is missing, and no later play may start.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO_ROOT, play_results, run_shipped_playbook

SITE = REPO_ROOT / "playbooks" / "site.yml"
VAULT_EXAMPLE = REPO_ROOT / "inventories" / "group_vars" / "all" / "vault.yml.example"
HOSTS = {
    "db": "198.51.100.11",
    "s3": "198.51.100.12",
    "mlflow1": "198.51.100.21",
    "mlflow2": "198.51.100.22",
    "proxy": "198.51.100.30",
}


def _inventory(tmp_path: Path, groups: dict[str, list[str]], private: bool = True, extra: str = "") -> Path:
    lines = []
    for group, hosts in groups.items():
        lines.append(f"[{group}]")
        for name in hosts:
            address = f" mlops_private_address={HOSTS[name]}" if private else ""
            lines.append(f"{name} ansible_host={HOSTS[name]}{address}")
    lines += ["[all:vars]", "ansible_connection=ssh", "ansible_ssh_timeout=3", extra]
    path = tmp_path / "hosts.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


def _site(inventory: Path, *args: str) -> tuple[int, dict]:
    return run_shipped_playbook(SITE, inventory, *args)


SPLIT = {"mlflow_db": ["db"], "mlflow_object_store": ["s3"], "mlflow_server": ["mlflow1", "mlflow2"]}
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


@pytest.mark.parametrize(("groups", "private", "extra", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_incomplete_layout_stops_in_preflight_naming_what_is_missing(groups, private, extra, named, tmp_path):
    rc, report = _site(_inventory(tmp_path, groups, private, extra))
    assert rc != 0
    assert [play["play"]["name"] for play in report["plays"]] == ["Check the inventory describes a complete layout"]
    results = play_results(report["plays"][0])
    failed = [result for result in results if result.get("failed")]
    assert failed, results
    # A looped check reports per item, under "results".
    messages = [item.get("msg", "") for item in failed[0].get("results", [failed[0]]) if item.get("failed")]
    assert messages
    assert all(named in message for message in messages), messages
    assert not any(result.get("changed") for result in results)
    assert all(stats["unreachable"] == 0 and stats["changed"] == 0 for stats in report["stats"].values())


@pytest.mark.parametrize(
    ("inventory", "extra"),
    [
        ("pi.ini", []),
        ("onprem.ini", []),
        ("aws.ini", ["-e", "mlops_db_uri=postgresql://mlflow:pw@rds.example:5432/mlflow?sslmode=require"]),
    ],
)
def test_shipped_inventories_pass_preflight(inventory, extra):
    # Only the preflight play's own tasks are looked at; with --tags, later plays run argument
    # validation only, which happens on the controller.
    _, report = _site(
        REPO_ROOT / "inventories" / inventory, "--tags", "mlops_preflight", "-e", f"@{VAULT_EXAMPLE}", *extra
    )
    preflight = report["plays"][0]
    assert preflight["play"]["name"] == "Check the inventory describes a complete layout"
    results = play_results(preflight)
    assert results
    assert not [result for result in results if result.get("failed")], results
    assert all(stats["unreachable"] == 0 and stats["changed"] == 0 for stats in report["stats"].values())
