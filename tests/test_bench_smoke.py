"""The benches keep working: each runs once with --tiny and writes its result with the expected keys.

Not a timed test: nothing here looks at a number. The three benches run side by side (they
use their own free ports and temp dirs) to keep this under a minute; then bench/report.py
turns their results into a page and plots in a temp dir.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parent.parent / "bench"
COMMON = {"tiny", "elapsed_s", "machine", "versions", "settings", "summary", "targets", "bench", "finished"}
EXPECTED = {
    "tracking_throughput": COMMON | {"hash_verify_ms", "health_probe", "rows"},
    "converge_cost": COMMON | {"runs", "fresh_tasks"},
    "footprint": COMMON | {"ratios", "load", "samples"},
    "artifact_throughput": COMMON | {"rows"},
    "model_load": COMMON | {"loads"},
}


def bench_module(name: str):
    """Import bench/<name>.py (its report_section and targets), with bench/ on the path only meanwhile."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("the benches start PostgreSQL and nginx as root, like the other real-service tests")
    if not shutil.which("nginx") or not shutil.which("htpasswd"):
        pytest.skip("nginx and apache2-utils are needed (scripts/host-deps)")
    out = tmp_path_factory.mktemp("bench-results")
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(BENCH / f"{name}.py"), "--tiny", "--out", str(out / f"{name}.json")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in EXPECTED
    }
    failures = []
    for name, proc in procs.items():
        output, _ = proc.communicate(timeout=900)  # a wait, not a measure: CI runs it beside molecule
        if proc.returncode != 0:
            failures.append(f"{name} exited {proc.returncode}:\n{output[-4000:]}")
    assert not failures, "\n\n".join(failures)
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bench_writes_its_result(results, name):
    result = json.loads((results / f"{name}.json").read_text())
    assert EXPECTED[name] <= result.keys()
    assert result["tiny"] is True
    assert result["bench"] == name
    assert {"cpu", "cpus", "ram_gib", "kernel"} <= result["machine"].keys()
    assert {"mlflow", "nginx", "postgres", "python"} <= result["versions"].keys()


def test_tracking_result_has_every_case_and_call(results):
    result = json.loads((results / "tracking_throughput.json").read_text())
    table = result["summary"]["table"]
    assert set(table) == {"a", "b_tls", "c_ttl0", "d_guide"}
    for case in table.values():
        assert set(case) == {"log_batch", "get_run", "search_runs", "artifact_upload", "artifact_download"}
    assert "b_tls/a" in result["summary"]["ratios"]
    assert all(row["requests"] > 0 for row in result["rows"]), "every burst completed requests"
    assert all(row["errors"] == 0 for row in result["rows"]), [r["first_error"] for r in result["rows"] if r["errors"]]


def test_converge_result_times_tasks(results):
    result = json.loads((results / "converge_cost.json").read_text())
    assert "ANSIBLE_CONFIG" not in result["settings"]["env_additions"]
    variants = result["summary"]["variants"]
    assert set(variants) == {"local/defaults", "local/mitogen"}, "the user's path, plain and with mitogen"
    for variant in variants.values():
        for kind in ("noop", "check"):
            assert variant[kind]["tasks_timed"] > 0
            assert variant[kind]["top_tasks"]
    assert result["settings"]["failures"] == []
    assert result["targets"]["changed_zero_everywhere"] is True


def test_footprint_result_measures_every_service(results):
    result = json.loads((results / "footprint.json").read_text())
    for profile in ("default", "pi"):
        for phase in ("idle", "load_peak"):
            memory = result["summary"][profile][phase]
            assert set(memory) == {"postgres", "mlflow", "nginx", "seaweedfs", "stack"}
            assert all(m["processes"] > 0 and m["resident_mib"] > 0 for m in memory.values())


def test_artifact_result_round_trips_every_case(results):
    artifact_throughput = bench_module("artifact_throughput")
    result = json.loads((results / "artifact_throughput.json").read_text())
    table = result["summary"]["table"]
    assert set(table) == {"8m"}
    for cells in table["8m"].values():
        assert set(cells) == {"nginx", "mlflow", "s3"}
    failed = [r["error"] for r in result["rows"] if "error" in r]
    assert not failed, failed
    assert len(result["rows"]) == 6 and all(r["mib_s"] > 0 for r in result["rows"])
    assert all(r["sha256_ok"] for r in result["rows"] if r["op"] == "download")
    assert "nginx/mlflow" in result["summary"]["ratios"]
    assert result["targets"]["round trip 8m through nginx"]["met"] is True
    rows = artifact_throughput.targets(result)
    assert len(rows) == 3 and all(isinstance(met, bool) for _, _, met in rows)
    assert any(line.startswith("| 8 MiB | upload |") for line in artifact_throughput.report_section(result))


def test_model_load_result_times_both_servers(results):
    model_load = bench_module("model_load")
    result = json.loads((results / "model_load.json").read_text())
    assert {row["case"] for row in result["loads"]} == {"stack", "baseline"}
    assert all(row["seconds"] > 0 for row in result["loads"])
    assert result["summary"]["statuses"]["stack"]["500"] == 0, "the stack's server answered 500 (S3 404 plugin)"
    assert result["summary"]["no_plugin"]["statuses"]["500"] > 0, "without the plugin the miss is a 500"
    rows = model_load.targets(result)
    assert len(rows) == 2 and all(isinstance(met, bool) for _, _, met in rows)
    assert any(line.startswith("| stack |") for line in model_load.report_section(result))


def test_report_renders_the_page_and_plots(results, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCH / "report.py"), "--results", str(results), "--docs", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "benchmarks.md").read_text()
    for section in ("## 1. Tracking API", "## 2. Converge cost", "## 3. Footprint", "## Targets"):
        assert section in page
    assert sorted(p.name for p in (tmp_path / "img").iterdir()) == [
        "bench-converge.png",
        "bench-footprint.png",
        "bench-tracking-variants.png",
        "bench-tracking.png",
    ]
