"""scripts/molecule-lanes runs scenarios side by side; nothing they share may be rewritten per run."""

from __future__ import annotations

from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))


def _lanes_module():
    loader = SourceFileLoader("molecule_lanes", str(ROOT / "scripts" / "molecule-lanes"))
    module = module_from_spec(spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_scenario_installs_the_collection_into_the_shared_path(scenario):
    # A prerun installs the collection with --force into ~/.ansible/collections; two lanes doing
    # it at once delete each other's copy mid-install (CI failed so: "No such file ... README.md").
    shared = _yaml(ROOT / ".config" / "molecule" / "config.yml")
    own = _yaml(ROOT / "molecule" / scenario / "molecule.yml")
    assert own.get("prerun", shared.get("prerun", True)) is False
    env = {**shared["provisioner"]["env"], **own.get("provisioner", {}).get("env", {})}
    assert "MOLECULE_PROJECT_DIRECTORY" in env["ANSIBLE_COLLECTIONS_PATH"] or (
        "MOLECULE_EPHEMERAL_DIRECTORY" in env["ANSIBLE_COLLECTIONS_PATH"]
    )


def test_checkout_is_its_own_collection_path():
    link = ROOT / "collections" / "ansible_collections" / "mlops" / "mlflow"
    assert link.is_symlink() and link.resolve() == ROOT


def test_lanes_balance_longest_first_onto_least_loaded():
    plan = _lanes_module().balance(["pi", "common", "sqlite", "onprem", "faults", "container"], 3)
    assert plan == [["onprem", "common"], ["faults", "sqlite"], ["container", "pi"]]
