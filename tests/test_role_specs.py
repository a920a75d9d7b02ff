"""Every role documents every default in meta/argument_specs.yml, and only role-prefixed names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROLES_DIR = Path(__file__).resolve().parent.parent / "roles"
ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if (p / "tasks").is_dir())
# The layout role's options are the collection's mlops_* knobs: read from the inventory by the
# mlops.mlflow.layout filter (hostvars), never given role defaults that would hide them.
LAYOUT = "layout"


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {} if path.is_file() else {}


@pytest.mark.parametrize("role", [role for role in ROLES if role != LAYOUT])
def test_defaults_and_spec_name_the_same_variables(role):
    defaults = _load(ROLES_DIR / role / "defaults" / "main.yml")
    specs = _load(ROLES_DIR / role / "meta" / "argument_specs.yml")["argument_specs"]
    # An internal role (roles/_*, included with tasks_from) has no main: one spec per entry point.
    entry_points = list(specs) if role.startswith("_") else ["main"]
    spec = {name: opt for entry in entry_points for name, opt in specs[entry]["options"].items()}
    optional = {name for name, opt in spec.items() if not opt.get("required")}
    assert set(defaults) <= set(spec), f"undocumented defaults: {sorted(set(defaults) - set(spec))}"
    assert optional <= set(defaults), f"documented but no default: {sorted(optional - set(defaults))}"


def test_layout_documents_the_knobs_and_has_no_defaults():
    spec = _load(ROLES_DIR / LAYOUT / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert spec and all(name.startswith("mlops_") for name in spec), sorted(spec)
    assert not (ROLES_DIR / LAYOUT / "defaults").exists()
    # Every knob the filter reads is documented, and every documented one is read.
    source = (ROLES_DIR.parent / "plugins" / "filter" / "layout.py").read_text()
    # (What the filter sets, not reads: the S3 key's host, and which knob set which role variable.)
    read = set(re.findall(r'"(mlops_[a-z0-9_]+)"', source)) - {"mlops_layout_s3_key_host", "mlops_layout_origins"}
    read |= {"mlops_layout"}  # read by the playbooks, which skip the step
    assert read == set(spec), (sorted(read - set(spec)), sorted(set(spec) - read))


@pytest.mark.parametrize("role", ROLES)
def test_variables_carry_the_role_prefix(role):
    defaults = _load(ROLES_DIR / role / "defaults" / "main.yml")
    internal = _load(ROLES_DIR / role / "vars" / "main.yml")
    assert all(name.startswith(f"{role}_") for name in defaults), sorted(defaults)
    assert all(name.startswith(f"_{role}_") for name in internal), sorted(internal)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_readme_and_metadata(role):
    assert (ROLES_DIR / role / "meta" / "main.yml").is_file()
    assert (ROLES_DIR / role / "README.md").is_file()
