"""mlflow_server keeps MLflow's usage telemetry off unless mlflow_server_telemetry_enabled says so.

The env file (read by systemd's EnvironmentFile, the cron start script and the container's
entry point) carries MLFLOW_DISABLE_TELEMETRY and DO_NOT_TRACK, the two names mlflow's own
`mlflow.telemetry.utils.is_telemetry_disabled` reads; the check runs in a clean process so
that the test runner's own CI markers (PYTEST_CURRENT_TEST, CI) do not decide it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest
from support.role_template import render_role_template

PROBE = "from mlflow.telemetry.utils import is_telemetry_disabled; print(is_telemetry_disabled())"


def _env(tmp_path, overrides: dict) -> dict[str, str]:
    text = render_role_template("mlflow_server", "mlflow-server.env.j2", tmp_path / "env", tmp_path, overrides)
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return {name: shlex.split(value)[0] if value else "" for name, value in pairs}


def _mlflow_says_disabled(env: dict[str, str], tmp_path) -> bool:
    clean = {"PATH": os.environ["PATH"], **env, "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", PROBE], env=clean, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1] == "True"


def test_telemetry_is_off_by_default(tmp_path):
    env = _env(tmp_path, {"mlflow_server_home": "/var/lib/mlflow"})
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert env["DO_NOT_TRACK"] == "true"
    assert _mlflow_says_disabled(env, tmp_path)


@pytest.mark.parametrize("name", ["MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK"])
def test_each_name_alone_turns_mlflow_telemetry_off(name, tmp_path):
    env = _env(tmp_path, {"mlflow_server_home": "/var/lib/mlflow"})
    other = ({"MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK"} - {name}).pop()
    del env[other]
    assert _mlflow_says_disabled(env, tmp_path)


def test_telemetry_enabled_leaves_both_out(tmp_path):
    env = _env(tmp_path, {"mlflow_server_home": "/var/lib/mlflow", "mlflow_server_telemetry_enabled": True})
    assert "MLFLOW_DISABLE_TELEMETRY" not in env
    assert "DO_NOT_TRACK" not in env
    # The control: in the same clean process, mlflow would send telemetry.
    assert not _mlflow_says_disabled(env, tmp_path)
