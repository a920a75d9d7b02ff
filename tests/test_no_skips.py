"""make test lets no test skip silently: under MLOPS_NO_SKIPS=1 (scripts/test sets it) a skip fails.

The probes below exist only when MLOPS_SKIP_PROBE=1, which only this file's own pytest runs set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()

if os.environ.get("MLOPS_SKIP_PROBE") == "1":

    def test_probe_skips():
        pytest.skip("a tool is missing")

    @pytest.mark.optional
    def test_probe_optional_skips():
        pytest.skip("opt-in")


def _run(probe: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "MLOPS_NO_SKIPS"} | {"MLOPS_SKIP_PROBE": "1"} | env
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"{HERE}::{probe}"],
        cwd=HERE.parent.parent,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_skip_fails_under_make_test():
    proc = _run("test_probe_skips", MLOPS_NO_SKIPS="1")
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "skipped under MLOPS_NO_SKIPS=1 (make test must run it): Skipped: a tool is missing" in proc.stdout


def test_a_skip_is_a_skip_elsewhere():
    proc = _run("test_probe_skips")
    assert proc.returncode == 0 and "1 skipped" in proc.stdout, proc.stdout[-2000:]


def test_an_optional_test_may_skip_under_make_test():
    proc = _run("test_probe_optional_skips", MLOPS_NO_SKIPS="1")
    assert proc.returncode == 0 and "1 skipped" in proc.stdout, proc.stdout[-2000:]


def test_scripts_test_sets_it():
    assert "MLOPS_NO_SKIPS=1 pytest tests" in (HERE.parent.parent / "scripts" / "test").read_text()
