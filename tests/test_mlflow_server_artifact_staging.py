"""mlflow_server's env file points the server's temp files at its home when artifacts go to S3.

With an S3 destination and --serve-artifacts, mlflow 3.x writes every proxied artifact whole to
a temp file (tempfile's TMPDIR): an upload before it goes on to S3, a download before the first
byte goes out. The container runs with `--tmpfs /tmp` (RAM, half of it at most) and a host's
tmpfs /tmp under PrivateTmp counts against MemoryMax, so a multi-GB artifact there fails; the
home is on disk and writable in both modes (ReadWritePaths, the container's volume).
"""

from __future__ import annotations

import shlex

from support.role_template import render_role_template


def _env(tmp_path, overrides: dict) -> dict[str, str]:
    text = render_role_template("mlflow_server", "mlflow-server.env.j2", tmp_path / "env", tmp_path, overrides)
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return {name: shlex.split(value)[0] if value else "" for name, value in pairs}


S3 = {
    "mlflow_server_artifacts_destination": "s3://mlflow/artifacts",
    "mlflow_server_s3_endpoint_url": "http://127.0.0.1:8333",
    "mlflow_server_home": "/srv/mlflow home",
}


def test_s3_artifacts_stage_in_the_home(tmp_path):
    env = _env(tmp_path, S3)
    assert env["TMPDIR"] == "/srv/mlflow home"
    assert env["HOME"] == env["TMPDIR"]


def test_extra_env_still_overrides_it(tmp_path):
    text = render_role_template(
        "mlflow_server",
        "mlflow-server.env.j2",
        tmp_path / "env",
        tmp_path,
        S3 | {"mlflow_server_extra_env": {"TMPDIR": "/data/mlflow-tmp"}},
    )
    values = [shlex.split(line.split("=", 1)[1])[0] for line in text.splitlines() if line.startswith("TMPDIR=")]
    assert values == ["/srv/mlflow home", "/data/mlflow-tmp"]  # the last assignment wins in systemd and /bin/sh


def test_local_artifacts_keep_the_default_tmpdir(tmp_path):
    # Local artifacts stream straight into the destination; nothing is staged.
    assert "TMPDIR" not in _env(tmp_path, {"mlflow_server_home": "/var/lib/mlflow"})
