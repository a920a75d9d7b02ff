"""Shared pytest fixtures for mlops.mlflow.

* ``run_module`` runs one of the collection's modules for real, through
  ``ansible-playbook`` on localhost with the test interpreter, and returns the
  task result as a dict (``changed``, ``failed``, ``msg``, ``diff``, ...).
* ``free_port`` hands out a free TCP port on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS_PATH = REPO_ROOT / "collections"

# Make `ansible_collections.mlops.mlflow...` importable for unit tests, and the
# shared service fixtures importable as `support.<name>`.
for _path in (COLLECTIONS_PATH, REPO_ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def _ansible_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        }
    )
    env.update(extra or {})
    return env


def run_playbook(
    plays: list[dict],
    tmp_path: Path,
    *,
    variables: dict | None = None,
    check: bool = False,
    diff: bool = False,
    json_output: bool = True,
    env: dict[str, str] | None = None,
    inventory: str | None = None,
) -> subprocess.CompletedProcess:
    """Run `plays` on localhost (local connection, the test interpreter) from this checkout.

    `inventory` (INI text) gives the run groups and hostvars to read; the plays still run on localhost."""
    book = tmp_path / "playbook.json"
    book.write_text(json.dumps(plays))
    hosts = "localhost,"
    if inventory is not None:
        hosts = str(tmp_path / "hosts.ini")
        Path(hosts).write_text(inventory)
    cmd = [
        shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook",
        "-i",
        hosts,
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
    ]
    if variables is not None:
        (tmp_path / "vars.json").write_text(json.dumps(variables))
        cmd += ["-e", f"@{tmp_path / 'vars.json'}"]
    cmd += [str(book)] + (["--check"] if check else []) + (["--diff"] if diff else [])
    extra = dict(env or {})
    if not json_output:
        extra.setdefault("ANSIBLE_STDOUT_CALLBACK", "ansible.builtin.default")
    return subprocess.run(cmd, capture_output=True, text=True, env=_ansible_env(extra), check=False)


def task_results(proc: subprocess.CompletedProcess) -> list[tuple[str, dict]]:
    """A json-callback run of run_playbook: each task of its first play as (the task's name
    without its role prefix, localhost's result); [] when the run printed no report."""
    if not proc.stdout.startswith("{"):
        return []
    return [
        (task["task"]["name"].split(" : ", 1)[-1], task["hosts"].get("localhost", {}))
        for task in json.loads(proc.stdout)["plays"][0]["tasks"]
    ]


def changed_tasks(ran: list[tuple[str, dict]]) -> list[str]:
    """The names of the tasks of task_results that changed something (skipped ones did not)."""
    return [name for name, result in ran if result.get("changed") and not result.get("skipped")]


def failure_messages(ran: list[tuple[str, dict]]) -> str:
    """The messages of the failed tasks and failed loop items of task_results, joined by " | "."""
    messages = []
    for _, result in ran:
        if result.get("failed"):
            messages.append(result.get("msg", ""))
        messages += [item.get("msg", "") for item in result.get("results", []) if item.get("failed")]
    return " | ".join(messages)


def run_shipped_playbook(playbook: Path, inventory: Path, *args: str) -> tuple[int, dict]:
    """Run one of the collection's playbooks with the json callback; return (rc, report).

    No fact gathering: the preflight tests point at unreachable hosts and must stay on the
    controller.
    """
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-i", str(inventory), *args],
        capture_output=True,
        text=True,
        env=_ansible_env({"ANSIBLE_GATHERING": "explicit"}),
        check=False,
    )
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError(f"no JSON report (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from exc


def play_results(play: dict) -> list[dict]:
    """Every host result of every task of one play in a json-callback report."""
    return [result for task in play["tasks"] for result in task["hosts"].values()]


def run_ansible_module(
    module: str,
    args: dict,
    *,
    check: bool = False,
    diff: bool = False,
    env: dict[str, str] | None = None,
    tmp_path: Path,
) -> dict:
    """Run ``mlops.mlflow.<module>`` once on localhost and return its result."""
    fqcn = module if "." in module else f"mlops.mlflow.{module}"
    play = {
        "name": "run one module",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"name": "module under test", fqcn: args, "ignore_errors": True}],
    }
    proc = run_playbook([play], tmp_path, check=check, diff=diff, env=env)
    try:
        report = json.loads(proc.stdout)
        result = report["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError) as exc:
        raise AssertionError(
            f"ansible-playbook gave no task result (rc={proc.returncode})\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        ) from exc
    result["_stdout"] = proc.stdout
    result["_stderr"] = proc.stderr
    return result


@pytest.fixture
def run_module(tmp_path):
    """Return a callable: run_module(name, args, check=False, diff=False, env=None)."""

    def _run(module: str, args: dict, **kwargs) -> dict:
        return run_ansible_module(module, args, tmp_path=tmp_path, **kwargs)

    return _run


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    return find_free_port()


# The user's path: the built tarball installed with ansible-galaxy into a directory of its own, and
# runs from another directory with no ansible.cfg and no ANSIBLE_* variable of the checkout's.
BIN = Path(sys.executable).parent


def clean_ansible_env(collections: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({"ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_NOCOLOR": "1"})
    env.update(extra or {})
    return env


@pytest.fixture(scope="session")
def collection_tarball(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build")
    subprocess.run(
        [BIN / "ansible-galaxy", "collection", "build", "--output-path", str(out), str(REPO_ROOT)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("mlops-mlflow-*.tar.gz")
    return path


@pytest.fixture(scope="session")
def installed_collection(collection_tarball, tmp_path_factory) -> Path:
    """The collections path holding only the installed mlops.mlflow."""
    path = tmp_path_factory.mktemp("installed")
    subprocess.run(
        [BIN / "ansible-galaxy", "collection", "install", "--no-deps", "-p", str(path), str(collection_tarball)],
        check=True,
        capture_output=True,
        env=clean_ansible_env(path),
    )
    assert (path / "ansible_collections" / "mlops" / "mlflow" / "MANIFEST.json").is_file()
    return path


def run_user_playbook(collections: Path, playbook: str, inventory: Path, *args: str) -> tuple[int, dict]:
    """Run an installed playbook (mlops.mlflow.site) as a user does, from the inventory's parent
    directory; return (rc, json report). No fact gathering: these runs must stay on the controller."""
    env = clean_ansible_env(
        collections,
        {
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
            "ANSIBLE_GATHERING": "explicit",
            "ANSIBLE_HOST_KEY_CHECKING": "false",
        },
    )
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), playbook, "-i", str(inventory), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=inventory.parent,
        check=False,
    )
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError(f"no JSON report (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from exc


# make test (scripts/test) sets MLOPS_NO_SKIPS=1: a test that skips there, because a tool is missing
# or the run is not root, fails instead, so a path never runs silently untested in CI. Only tests
# marked `optional` (opt-in, or not applicable to one of their parameters) may skip.
def pytest_configure(config):
    config.addinivalue_line("markers", "optional: may skip under MLOPS_NO_SKIPS=1 (opt-in or not applicable)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and not hasattr(report, "wasxfail")
        and os.environ.get("MLOPS_NO_SKIPS") == "1"
        and item.get_closest_marker("optional") is None
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under MLOPS_NO_SKIPS=1 (make test must run it): {reason}"
