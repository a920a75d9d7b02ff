"""common_packages reaches apt: the role's install step, in check mode on this Debian host, wants to
install a package the list names and the host lacks, and changes nothing for one it has.

roles/common/tasks/install.yml runs through ansible-playbook --check on localhost with the
system python (the apt module needs python3-apt, which the venv does not have) and a cache
validity long enough that the step never refreshes the apt cache (no network here).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from conftest import REPO_ROOT, run_playbook
from support.role_template import role_vars

TASK = "Install base packages"


def _installed(package: str) -> bool:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False)
    return proc.stdout.strip() == "install ok installed"


def _install_step(tmp_path, packages: list[str]) -> dict:
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Run the common install tasks",
                "ansible.builtin.include_tasks": str(REPO_ROOT / "roles/common/tasks/install.yml"),
            }
        ],
    }
    variables = {
        **role_vars("common"),
        "common_packages": packages,
        "common_extra_packages": [],
        "common_apt_cache_valid_time": 10 * 365 * 86400,
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    proc = run_playbook([play], tmp_path, variables=variables, check=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    return next(t for t in report["plays"][0]["tasks"] if t["task"]["name"] == TASK)["hosts"]["localhost"]


@pytest.fixture(scope="module")
def apt_host():
    if not shutil.which("apt-get") or subprocess.run(["/usr/bin/python3", "-c", "import apt"], check=False).returncode:
        pytest.fail("needs Debian's apt and python3-apt (run scripts/host-deps)")


def test_a_missing_package_in_the_list_is_to_be_installed(apt_host, tmp_path):
    assert not _installed("cowsay"), "the probe package must be absent from the test host"
    result = _install_step(tmp_path, ["ca-certificates", "cowsay"])
    assert result["changed"] is True, result
    assert not _installed("cowsay"), "check mode installed it"


def test_a_list_of_installed_packages_changes_nothing(apt_host, tmp_path):
    assert _installed("ca-certificates")
    result = _install_step(tmp_path, ["ca-certificates"])
    assert result["changed"] is False, result
