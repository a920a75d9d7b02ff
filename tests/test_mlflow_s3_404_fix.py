"""mlflow_server_s3_404_fix: the role installs the S3 404 plugin where the server's python finds it.

- The shipped files are a proper installed distribution: RECORD hashes match the files.
- The role's own tasks (tasks/s3_404_fix.yml, the step install.yml imports) run on localhost
  into a temp venv: check mode on a host without the venv reports a change and writes nothing;
  apply installs (and notifies the restart handler); the venv's python then lists the entry
  point, pip lists the distribution, and mlflow's registry hands out the plugin for s3://;
  a second apply changes nothing; mlflow_server_s3_404_fix=false removes it (and restarts).
  With local artifacts nothing is installed.
- The image mode's Dockerfile copies it into the image's venv when on, and not when off or
  when the artifacts are local.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import REPO_ROOT, run_playbook
from support.role_template import render_role_template
from support.s3_404_fix import DIST_INFO, ENTRY_POINT, PLUGIN_DIR, record_text

ROLE = REPO_ROOT / "roles" / "mlflow_server"
DEV_SITE_PACKAGES = sysconfig.get_path("purelib")  # where this venv's mlflow lives
PLAY = {
    "name": "install the S3 404 plugin with the role's own tasks",
    "hosts": "localhost",
    "gather_facts": False,
    "tasks": [{"ansible.builtin.import_role": {"name": "mlops.mlflow.mlflow_server", "tasks_from": "s3_404_fix"}}],
}
RESTART = "Restart mlflow server (cron start script)"


def test_record_lists_every_file_with_its_hash():
    assert (PLUGIN_DIR / DIST_INFO / "RECORD").read_text() == record_text(), (
        "RECORD is stale: rewrite it with .venv/bin/python tests/support/s3_404_fix.py"
    )
    entry_points = (PLUGIN_DIR / DIST_INFO / "entry_points.txt").read_text()
    assert entry_points == f"[mlflow.artifact_repository]\ns3 = {ENTRY_POINT}\n"


def _converge(tmp_path: Path, install_dir: Path, *, check: bool = False, **variables) -> list[dict]:
    """Run the step; return [(task name, changed)] for the tasks and handlers that ran."""
    variables = {
        "mlflow_server_install_dir": str(install_dir),
        "mlflow_server_artifacts_destination": "s3://mlflow/artifacts",
        "mlflow_server_service_manager": "cron",
        # The handler restarts a server through the start script: nothing to restart here.
        "_mlflow_server_start_script": "/bin/true",
        **variables,
    }
    proc = run_playbook([PLAY], tmp_path, variables=variables, check=check)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    play = json.loads(proc.stdout)["plays"][0]
    ran = []
    for task in play["tasks"]:
        result = task["hosts"]["localhost"]
        if not result.get("skipped"):
            ran.append((task["task"]["name"].split(" : ", 1)[-1], bool(result.get("changed"))))
    return ran


def _changed(ran: list) -> list[str]:
    return [name for name, changed in ran if changed]


def _venv_python(venv: Path, code: str, extra_path: str = "") -> str:
    env = {"PATH": "/usr/bin:/bin", **({"PYTHONPATH": extra_path} if extra_path else {})}
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_install_step_puts_the_plugin_where_the_venv_sees_it(tmp_path):
    install_dir = tmp_path / "opt-mlflow"
    venv = install_dir / "venv"

    # Check mode before the venv exists (a fresh host): a change announced, nothing written.
    ran = _converge(tmp_path, install_dir, check=True)
    assert "Install the S3 artifact repository plugin that answers a missing file with 404" in _changed(ran)
    assert not install_dir.exists()

    install_dir.mkdir()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(_venv_python(venv, "import sysconfig; print(sysconfig.get_path('purelib'))"))

    ran = _converge(tmp_path, install_dir, check=True)
    assert _changed(ran) == ["Install the S3 artifact repository plugin that answers a missing file with 404"]
    assert not (site / "mlops_mlflow_s3_404.py").exists(), "check mode wrote the plugin"

    ran = _converge(tmp_path, install_dir)
    assert _changed(ran) == ["Install the S3 artifact repository plugin that answers a missing file with 404", RESTART]
    assert (site / "mlops_mlflow_s3_404.py").read_bytes() == (PLUGIN_DIR / "mlops_mlflow_s3_404.py").read_bytes()

    # The venv's own python sees the distribution and its entry point (no mlflow needed for that).
    found = _venv_python(
        venv,
        "import importlib.metadata as m, json; d = m.distribution('mlops-mlflow-s3-404'); "
        "eps = m.entry_points(group='mlflow.artifact_repository'); "
        "print(json.dumps([d.version, [(e.name, e.value) for e in eps]]))",
    )
    assert json.loads(found) == ["1.0.0", [["s3", ENTRY_POINT]]]
    pip_list = subprocess.run(
        [str(Path(sys.executable).parent / "pip"), "list", "--path", str(site), "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert {"name": "mlops-mlflow-s3-404", "version": "1.0.0"} in json.loads(pip_list.stdout)
    # mlflow (this checkout's, on PYTHONPATH) takes s3:// from the plugin in that venv.
    repo = _venv_python(
        venv,
        "from mlflow.store.artifact.artifact_repository_registry import get_registered_artifact_repositories as r; "
        "c = r()['s3']; print(c.__module__ + ':' + c.__qualname__)",
        extra_path=DEV_SITE_PACKAGES,
    )
    assert repo == ENTRY_POINT

    assert _changed(_converge(tmp_path, install_dir)) == [], "second converge changed something"

    # A converge that changes nothing copies nothing, yet sees an edited file or a changed mode.
    plugin = site / "mlops_mlflow_s3_404.py"
    plugin.write_text(plugin.read_text() + "# edited by hand\n")
    assert _changed(_converge(tmp_path, install_dir, check=True)) == [
        "Install the S3 artifact repository plugin that answers a missing file with 404"
    ]
    assert _changed(_converge(tmp_path, install_dir))[0].startswith("Install the S3 artifact repository plugin")
    assert plugin.read_bytes() == (PLUGIN_DIR / "mlops_mlflow_s3_404.py").read_bytes()
    (site / DIST_INFO / "METADATA").chmod(0o666)
    assert _changed(_converge(tmp_path, install_dir))[0].startswith("Install the S3 artifact repository plugin")
    assert _changed(_converge(tmp_path, install_dir)) == []

    ran = _converge(tmp_path, install_dir, mlflow_server_s3_404_fix=False)
    assert _changed(ran) == ["Remove the S3 artifact repository plugin", RESTART]
    assert not (site / "mlops_mlflow_s3_404.py").exists()
    assert not (site / DIST_INFO).exists()


def test_local_artifacts_get_no_plugin(tmp_path):
    install_dir = tmp_path / "opt-mlflow"
    install_dir.mkdir()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(install_dir / "venv")], check=True)
    ran = _converge(tmp_path, install_dir, mlflow_server_artifacts_destination=str(tmp_path / "artifacts"))
    assert _changed(ran) == []
    assert "Install the S3 artifact repository plugin that answers a missing file with 404" not in dict(ran)


@pytest.mark.parametrize(
    ("overrides", "installed"),
    [
        ({"mlflow_server_artifacts_destination": "s3://mlflow/artifacts"}, True),
        ({"mlflow_server_artifacts_destination": "s3://mlflow/artifacts", "mlflow_server_s3_404_fix": False}, False),
        ({}, False),  # local artifacts
    ],
)
def test_image_gets_the_plugin_when_on(tmp_path, overrides, installed):
    overrides = {"role_path": str(ROLE), "mlflow_server_install_mode": "container"} | overrides
    text = render_role_template("mlflow_server", "Dockerfile.j2", tmp_path / "Dockerfile", tmp_path, overrides)
    assert ("COPY s3_404_fix/ /opt/mlflow/s3_404_fix/" in text) is installed
    assert ("org.mlops.mlflow.s3-404-fix=" in text) is installed
    if installed:
        assert f'"{ENTRY_POINT}" in {{e.value for e' in text, "the build checks the entry point"
