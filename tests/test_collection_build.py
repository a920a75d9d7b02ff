"""The collection builds, installs with ansible-galaxy and runs by FQCN from there."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from conftest import clean_ansible_env

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# Nothing of the development tree may ship in the tarball.
FORBIDDEN_PARTS = {
    ".venv",
    ".cache",
    ".git",
    ".pytest_cache",
    ".ruff_cache",
    "__pycache__",
    "collections",
    "molecule",
    "tests",
    ".ci",
    "scripts",
    "bench",
    # Example inventories are for copying from the repository; the collection needs none of them.
    "docs",
    "inventories",
}


@pytest.fixture(scope="module")
def tarball(collection_tarball) -> Path:
    version = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())["version"]
    assert collection_tarball.name == f"mlops-mlflow-{version}.tar.gz"
    return collection_tarball


def test_tarball_holds_no_development_files(tarball):
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    offenders = [n for n in names if FORBIDDEN_PARTS.intersection(Path(n).parts)]
    assert offenders == []
    assert not [n for n in names if n.endswith((".pyc", ".tar.gz", ".log"))]
    for required in (
        "MANIFEST.json",
        "meta/runtime.yml",
        "playbooks/site.yml",
        "roles/common/tasks/main.yml",
        "roles/layout/tasks/main.yml",
        # The internal role the others include (roles/_* must not be dropped by build_ignore).
        "roles/_systemd/tasks/job.yml",
        "roles/_systemd/tasks/catch_up.yml",
        "roles/_systemd/tasks/account.yml",
        "roles/_systemd/meta/argument_specs.yml",
        "plugins/filter/layout.py",
        "plugins/test/layout.py",
    ):
        assert required in names


def test_manifest_names_the_collection(tarball):
    with tarfile.open(tarball) as archive:
        manifest = json.load(archive.extractfile("MANIFEST.json"))
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"]) == ("mlops", "mlflow")
    assert info["repository"] == "https://github.com/mlops-mlflow/mlops.mlflow"


PLACEHOLDER = re.compile(
    r"example\.(invalid|com|org|net)|\bTODO\b|CHANGEME|\bchange[ _-]?me\b|\byour[_-]|<[a-z_ -]+>", re.IGNORECASE
)


def test_galaxy_yml_has_no_placeholder_values():
    galaxy = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())

    def strings(value):
        if isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)
        elif isinstance(value, str):
            yield value

    assert [s for s in strings(galaxy) if PLACEHOLDER.search(s)] == []
    links = {key: galaxy.get(key) for key in ("repository", "homepage", "documentation", "issues")}
    assert all(links.values()), f"galaxy.yml lacks links: {links}"
    repository = links["repository"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repository), repository
    assert all(link.startswith(repository) for link in links.values()), links


MODULES = sorted(path.stem for path in (REPO_ROOT / "plugins" / "modules").glob("*.py") if path.stem != "__init__")


@pytest.fixture(scope="module")
def installed(installed_collection, tmp_path_factory) -> dict[str, str]:
    """The environment of a clean ansible with only the built collection installed."""
    return clean_ansible_env(installed_collection, {"ANSIBLE_LOCAL_TEMP": str(tmp_path_factory.mktemp("ansible-tmp"))})


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_every_module(installed, module):
    proc = subprocess.run(
        [BIN / "ansible-doc", "--json", f"mlops.mlflow.{module}"],
        capture_output=True,
        text=True,
        env=installed,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)[f"mlops.mlflow.{module}"]
    assert doc["doc"]["short_description"] and doc["examples"].strip() and doc["return"], module
    assert doc["doc"]["attributes"]["check_mode"]["support"] in {"full", "partial"}, module
    text = subprocess.run(
        [BIN / "ansible-doc", f"mlops.mlflow.{module}"], capture_output=True, text=True, env=installed, check=True
    ).stdout
    assert "EXAMPLES" in text and "RETURN VALUES" in text


def test_installed_collection_runs_site_playbook_by_fqcn(installed, tmp_path):
    env = installed
    collection = Path(env["ANSIBLE_COLLECTIONS_PATH"]) / "ansible_collections" / "mlops" / "mlflow"
    assert (collection / "roles" / "common" / "tasks" / "main.yml").is_file()

    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"[mlflow_server]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        "[mlflow_proxy]\nlocalhost\n"
    )
    users = json.dumps({"mlops_users": [{"name": "build-test", "password": "build-test-password"}]})
    # Check mode against this machine, common role's install step only: proves the
    # playbook and its roles resolve by FQCN from the installed path (cwd has no
    # ansible.cfg pointing at the checkout).
    proc = subprocess.run(
        [
            BIN / "ansible-playbook",
            "mlops.mlflow.site",
            "-i",
            str(inventory),
            "--check",
            "--tags",
            "common_install",
            "-e",
            "ansible_become=false",
            "-e",
            users,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mlops.mlflow.common : Install base packages" in proc.stdout
    assert "failed=0" in proc.stdout
