"""No molecule scenario borrows the checkout's layout: the collection lays out every inventory itself.

A scenario that links or copies an inventory's group_vars from the checkout (the old
inventories/group_vars wiring, or the examples under docs/) would hide a product that only
works beside that directory. Scenario-local links (./host_vars/, ./inventory/) stay allowed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
MOLECULE = REPO_ROOT / "molecule"
SCENARIOS = sorted(path.parent for path in MOLECULE.glob("*/molecule.yml"))
BORROWED = ("inventories/group_vars", "../inventories", "../docs/")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[path.name for path in SCENARIOS])
def test_inventory_links_stay_inside_the_scenario(scenario):
    config = yaml.safe_load((scenario / "molecule.yml").read_text()) or {}
    links = ((config.get("provisioner") or {}).get("inventory") or {}).get("links") or {}
    for name, target in links.items():
        resolved = (scenario / target).resolve()
        assert resolved.is_relative_to(scenario.resolve()), f"{scenario.name}: {name} links {target}"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[path.name for path in SCENARIOS])
def test_no_scenario_file_names_the_checkouts_inventories(scenario):
    offenders = [
        f"{path.relative_to(MOLECULE)}: {needle}"
        for path in sorted(scenario.rglob("*"))
        if path.is_file() and path.suffix in {".yml", ".yaml", ".py", ".ini", ".j2"}
        for needle in BORROWED
        if needle in path.read_text()
    ]
    assert offenders == []


def test_the_checkout_has_no_inventory_wiring_left():
    assert not (REPO_ROOT / "inventories").exists()
    assert not list((REPO_ROOT / "docs" / "examples").rglob("wiring.yml"))


@pytest.mark.parametrize("scenario", ["installed", "onprem"])
def test_user_path_scenarios_copy_their_own_inventory(scenario):
    user = MOLECULE / scenario / "user"
    assert (user / "hosts.yml").is_file() and (user / "group_vars" / "all" / "vault.yml").is_file()
    assert not [path for path in user.rglob("*") if path.is_symlink()]
    assert "user_path.yml" in (MOLECULE / scenario / "converge.yml").read_text()
    # Groups, connection and mlops_* knobs only: no role variable in the user's inventory.
    for path in user.rglob("*.yml"):
        text = path.read_text()
        assert not [
            prefix for prefix in ("postgres_", "object_store_", "mlflow_server_", "nginx_proxy_") if prefix in text
        ]
