"""What every run of the shipped playbooks prints and costs before any role task: no warning for a
group the layout does not use, no deprecated module option, no fact gathering (no role reads a fact;
each gather is a round trip per host and play).

The host-pattern case runs the installed mlops.mlflow.site from a user's own inventory with
--list-hosts (nothing is contacted).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sysconfig
from pathlib import Path

import pytest
import yaml
from conftest import BIN, REPO_ROOT, clean_ansible_env

PLAYBOOKS = sorted((REPO_ROOT / "playbooks").glob("*.yml"))
TASK_FILES = sorted((REPO_ROOT / "roles").glob("*/tasks/*.yml")) + PLAYBOOKS
# The dependency collections come with the `ansible` package, in this venv's site-packages.
POSTGRESQL = Path(sysconfig.get_paths()["purelib"]) / "ansible_collections" / "community" / "postgresql" / "plugins"
# Names the setup module sets (ansible_facts.<name> or the injected ansible_<name>).
SETUP_FACTS = (
    "architecture|distribution\\w*|os_family|default_ipv[46]|hostname|fqdn|nodename|memtotal_mb|memfree_mb|"
    "processor\\w*|date_time|env|user_id|pkg_mgr|service_mgr|python|python_version|lsb|machine|kernel\\w*|"
    "all_ipv[46]_addresses|interfaces|mounts|devices|virtualization_\\w+|system|userspace_\\w+"
)
FACT_USE = re.compile(rf"\bansible_(?:facts(?:\.|\[['\"])(?:{SETUP_FACTS})\b|(?:{SETUP_FACTS})\b)")


def _plays(path: Path) -> list[dict]:
    return [play for play in yaml.safe_load(path.read_text()) if "hosts" in play]


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.name)
def test_no_play_gathers_facts(playbook):
    gathering = [play["name"] for play in _plays(playbook) if play.get("gather_facts", True) is not False]
    assert not gathering


def test_no_role_reads_a_fact_the_plays_no_longer_gather():
    used = [
        f"{path.relative_to(REPO_ROOT)}: {match.group(0)}"
        for path in sorted((REPO_ROOT / "roles").rglob("*"))
        if path.is_file() and path.suffix in {".yml", ".j2"}
        for match in FACT_USE.finditer(path.read_text())
    ]
    assert not used


def _inventory(tmp_path: Path, s3_iam: bool) -> Path:
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    groups = ["mlflow_db", "mlflow_object_store", "mlflow_server", "mlflow_proxy"] + (["mlflow_s3_iam"] * s3_iam)
    lines = [f"[{group}]\npi ansible_host=127.0.0.1 ansible_port=9" for group in groups]
    (inventory / "hosts.ini").write_text("\n".join(lines) + "\n")
    return inventory


@pytest.mark.parametrize("s3_iam", [False, True], ids=["without-s3_iam", "with-s3_iam"])
def test_a_group_the_layout_does_not_use_draws_no_warning(installed_collection, tmp_path, s3_iam):
    inventory = _inventory(tmp_path, s3_iam)
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "mlops.mlflow.site", "-i", str(inventory), "--list-hosts"],
        capture_output=True,
        text=True,
        env=clean_ansible_env(installed_collection),
        cwd=inventory.parent,
        check=True,
    )
    output = proc.stdout + proc.stderr
    assert "Could not match supplied host pattern" not in output
    (play,) = [block for block in output.split("\n\n") if "Create the AWS S3 bucket and mlflow's identity" in block]
    assert play.split("hosts (", 1)[1].startswith("1):\n      pi" if s3_iam else "0):")


def _deprecated_aliases(source: str) -> set[str]:
    """Every alias listed under deprecated_aliases=[...] in a module or module_utils file."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg == "deprecated_aliases" and isinstance(node.value, ast.List):
            for entry in node.value.elts:  # {'name': ...} or dict(name=...)
                if isinstance(entry, ast.Dict):
                    pairs = zip(entry.keys, entry.values, strict=True)
                    pairs = [(key.value, value) for key, value in pairs if isinstance(key, ast.Constant)]
                else:
                    pairs = [(kw.arg, kw.value) for kw in getattr(entry, "keywords", [])]
                names |= {value.value for key, value in pairs if key == "name" and isinstance(value, ast.Constant)}
    return names


def _postgresql_tasks():
    def walk(items):
        for item in items or []:
            if not isinstance(item, dict):
                continue
            yield item
            for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks"):
                yield from walk(item.get(key))

    for path in TASK_FILES:
        for task in walk(yaml.safe_load(path.read_text())):
            for key, args in task.items():
                if key.startswith("community.postgresql."):
                    yield path, task.get("name", key), key.rsplit(".", 1)[1], args


POSTGRESQL_TASKS = list(_postgresql_tasks())


def test_the_collection_calls_postgresql_modules():
    assert len(POSTGRESQL_TASKS) >= 6


@pytest.mark.parametrize(
    ("path", "name", "module", "args"),
    POSTGRESQL_TASKS,
    ids=[f"{p.relative_to(REPO_ROOT)}:{n}" for p, n, _, _ in POSTGRESQL_TASKS],
)
def test_no_task_passes_a_deprecated_postgresql_alias(path, name, module, args):
    deprecated = _deprecated_aliases((POSTGRESQL / "module_utils" / "postgres.py").read_text())
    deprecated |= _deprecated_aliases((POSTGRESQL / "modules" / f"{module}.py").read_text())
    assert "port" in deprecated  # the alias these tasks used to pass, and a sign the parse works
    assert not sorted(set(args) & deprecated)


@pytest.mark.parametrize(
    "example", sorted((REPO_ROOT / "docs" / "examples").glob("*/hosts.ini")), ids=lambda p: p.parent.name
)
def test_example_inventories_turn_pipelining_on(example):
    """Without ansible.cfg (a user of the installed collection has none of ours), pipelining is off."""
    section = example.read_text().split("[all:vars]\n", 1)[1].split("\n[", 1)[0]
    assert "ansible_pipelining=true" in section.splitlines()
