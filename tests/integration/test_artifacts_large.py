"""A 5 GiB artifact up and down through the real stack, content checked by sha256 (opt-in, slow).

nginx with the site roles/nginx_proxy renders (TLS, basic auth, its body size limit and
timeouts) -> mlflow server with the flags roles/mlflow_server renders (--serve-artifacts)
-> SeaweedFS S3, driven by the real mlflow client: bench/artifact_throughput.py with only
the through-nginx case. Minutes of transfer and ~20 GiB of disk, so it runs only with
MLOPS_LARGE_ARTIFACTS=1; the bench run (docs/benchmarks.md) is the regular evidence.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.optional,
    pytest.mark.skipif(os.environ.get("MLOPS_LARGE_ARTIFACTS") != "1", reason="set MLOPS_LARGE_ARTIFACTS=1 (slow)"),
]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "artifact_throughput.py"
NEEDED_GIB = 20  # the file, SeaweedFS's copy, mlflow's staging copy and the download


def test_5gib_artifact_round_trips_through_nginx(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("starts PostgreSQL and nginx as root, like the other real-service tests")
    if not shutil.which("nginx"):
        pytest.skip("nginx is needed (scripts/host-deps)")
    free_gib = shutil.disk_usage("/tmp").free / (1 << 30)
    if free_gib < NEEDED_GIB:
        pytest.skip(f"needs {NEEDED_GIB} GiB free in /tmp, {free_gib:.0f} GiB there")
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--sizes", "5g", "--rounds", "1", "--cases", "nginx", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=3 * 3600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [(r["op"], r["case"], r["bytes"]) for r in rows] == [
        ("upload", "nginx", 5 << 30),
        ("download", "nginx", 5 << 30),
    ]
    assert not [r["error"] for r in rows if "error" in r]
    assert rows[1]["sha256_ok"] is True
    assert result["targets"]["round trip 5g through nginx"]["met"] is True
