"""reconverge's textfile metrics: the summarizer (roles/reconverge/files/summarize.py), run as the
runner runs it after each run, rewrites mlops_reconverge.prom in node exporter's textfile
directory ($MLOPS_TEXTFILE_DIR here, a temp dir): the last run's time and success, and the
changed task count of the last drift report, kept across apply runs. No directory, no file.
Debian's node exporter reads the file without a scrape error.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, find_free_port
from prometheus_client.parser import text_string_to_metric_families

SUMMARIZER = REPO_ROOT / "roles" / "reconverge" / "files" / "summarize.py"
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"


def _report(changed: int, failed: int = 0) -> dict:
    tasks = [{"task": {"name": f"Task {i}"}, "hosts": {"srv": {"changed": True}}} for i in range(changed)]
    tasks += [{"task": {"name": f"Broken {i}"}, "hosts": {"srv": {"failed": True, "msg": "no"}}} for i in range(failed)]
    return {"plays": [{"tasks": tasks}], "stats": {"srv": {"changed": changed, "failures": failed}}}


def _run(tmp_path: Path, textfiles: Path, mode: str, rc: int, report: dict | None) -> subprocess.CompletedProcess:
    run_dir = tmp_path / f"run-{time.monotonic_ns()}"
    run_dir.mkdir()
    if report is not None:
        (run_dir / "result.json").write_text(json.dumps(report))
    env = {**os.environ, "MLOPS_TEXTFILE_DIR": str(textfiles), "MLOPS_BACKUP_STATE_DIR": str(tmp_path / "none")}
    return subprocess.run(
        [sys.executable, str(SUMMARIZER), str(run_dir), mode, str(rc), "2026-12-02T00:00:00Z"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def _samples(textfiles: Path) -> dict[str, float]:
    text = (textfiles / "mlops_reconverge.prom").read_text()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def textfiles(tmp_path) -> Path:
    path = tmp_path / "textfile"
    path.mkdir()
    return path


def test_drift_report_records_its_changed_tasks(tmp_path, textfiles):
    before = time.time()
    proc = _run(tmp_path, textfiles, "drift-report", 0, _report(changed=3))
    assert proc.returncode == 0, proc.stderr
    samples = _samples(textfiles)
    assert samples["mlops_reconverge_drift_changed_tasks"] == 3
    assert samples["mlops_reconverge_last_run_success"] == 1
    assert before - 1 <= samples["mlops_reconverge_last_run_timestamp_seconds"] <= time.time() + 1
    assert (textfiles / "mlops_reconverge.prom").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in textfiles.iterdir()) == ["mlops_reconverge.prom"]  # no partial file left


def test_failed_apply_keeps_the_last_drift_count(tmp_path, textfiles):
    _run(tmp_path, textfiles, "drift-report", 0, _report(changed=2))
    proc = _run(tmp_path, textfiles, "apply", 2, _report(changed=5, failed=1))
    assert proc.returncode == 0, proc.stderr
    samples = _samples(textfiles)
    assert samples["mlops_reconverge_last_run_success"] == 0
    assert samples["mlops_reconverge_drift_changed_tasks"] == 2  # apply's changes are not drift
    # The next clean drift report clears it.
    _run(tmp_path, textfiles, "drift-report", 0, _report(changed=0))
    assert _samples(textfiles)["mlops_reconverge_drift_changed_tasks"] == 0
    assert _samples(textfiles)["mlops_reconverge_last_run_success"] == 1


def test_apply_before_any_drift_report_exports_no_drift_count(tmp_path, textfiles):
    _run(tmp_path, textfiles, "apply", 0, _report(changed=1))
    samples = _samples(textfiles)
    assert samples["mlops_reconverge_last_run_success"] == 1
    assert "mlops_reconverge_drift_changed_tasks" not in samples


def test_run_without_a_json_result_is_a_failure(tmp_path, textfiles):
    _run(tmp_path, textfiles, "apply", 0, None)
    assert _samples(textfiles)["mlops_reconverge_last_run_success"] == 0


def test_no_textfile_directory_no_metrics(tmp_path):
    missing = tmp_path / "no-node-exporter"
    proc = _run(tmp_path, missing, "drift-report", 0, _report(changed=1))
    assert proc.returncode == 0 and proc.stderr == ""
    assert not missing.exists()


def test_node_exporter_reads_the_file(tmp_path, textfiles):
    if not Path(NODE_EXPORTER).exists():
        pytest.fail(f"{NODE_EXPORTER} missing: run scripts/host-deps")
    _run(tmp_path, textfiles, "drift-report", 0, _report(changed=4))
    port = find_free_port()
    args = [f"--web.listen-address=127.0.0.1:{port}", f"--collector.textfile.directory={textfiles}"]
    proc = subprocess.Popen([NODE_EXPORTER, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, lines = time.monotonic() + 30, []
        while time.monotonic() < deadline and not lines:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/metrics")
                lines = conn.getresponse().read().decode().splitlines()
                conn.close()
            except OSError:
                time.sleep(0.2)
        assert "mlops_reconverge_drift_changed_tasks 4" in lines
        assert "node_textfile_scrape_error 0" in lines
    finally:
        proc.terminate()
        proc.wait(timeout=10)
