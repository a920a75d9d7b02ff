"""`make demo`'s own venv and its progress lines (no Docker: seconds).

requirements-demo.txt pins the same releases as requirements-dev.txt; scripts/demo's step
functions print the lines bench/demo_time.py reads the steps' seconds from.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# mlflow-skinny is not in requirements-dev.txt: mlflow pins it to its own release.
SAME_RELEASE_AS = {"mlflow-skinny": "mlflow"}


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", line)
        assert match, f"{path.name}: not an exact pin: {line!r}"
        found[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return found


def test_demo_pins_equal_the_dev_pins():
    demo, dev = pins(REPO / "requirements-demo.txt"), pins(REPO / "requirements-dev.txt")
    assert demo, "requirements-demo.txt pins nothing"
    for package, version in demo.items():
        source = SAME_RELEASE_AS.get(package, package)
        assert source in dev, f"{package} is in requirements-demo.txt but {source} not in requirements-dev.txt"
        assert version == dev[source], f"{package}=={version} in the demo, {source}=={dev[source]} in dev"


def test_mlflow_pins_mlflow_skinny_to_its_own_release():
    try:
        requires = importlib.metadata.requires("mlflow") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("mlflow is not installed in this venv (scripts/venv installs it)")
    wanted = f"mlflow-skinny=={importlib.metadata.version('mlflow')}"
    assert any(req.replace(" ", "").startswith(wanted) for req in requires), requires


def _demo_step_functions() -> str:
    """scripts/demo's step functions (between the steps banner and `image()`), without the rest."""
    text = (REPO / "scripts/demo").read_text()
    start = text.index("# ---------------------------------------------------------------- steps")
    return text[start : text.index("\nimage() {", start)]


def _bench():
    if str(REPO / "bench") not in sys.path:
        sys.path.insert(0, str(REPO / "bench"))  # its _common, as when run as bench/demo_time.py
    spec = importlib.util.spec_from_file_location("demo_time", REPO / "bench/demo_time.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_steps_print_what_the_bench_parses(tmp_path):
    script = "\n".join(
        [
            "set -euo pipefail",
            "log() { printf 'demo: %s\\n' \"$*\" >&2; }",
            "readonly logs=logs heartbeat=1",
            "mkdir -p logs",
            _demo_step_functions(),
            "begin total",
            "spawn slow sh -c 'echo fetching; sleep 3; echo unpacking'",
            "spawn quick true",
            "run shown sh -c 'echo TASK line; sleep 2.5'",
            "await slow quick",
            "done_step total",
        ]
    )
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "TASK line" in proc.stdout
    lines = [(0.0, line) for line in proc.stderr.splitlines()]
    parsed = _bench().parse(lines)
    assert set(parsed["order"]) == {"total", "slow", "quick", "shown"}, proc.stderr
    assert parsed["unfinished"] == [], proc.stderr
    assert parsed["steps"]["slow"]["seconds"] >= 3
    assert parsed["steps"]["shown"]["seconds"] >= 2
    # A background step shows its last output line; a foreground one beats while it is quiet.
    assert re.search(r"^demo: \[slow\] running, \d+s: fetching$", proc.stderr, re.M), proc.stderr
    assert parsed["steps"]["shown"]["heartbeats"] >= 1, proc.stderr
    assert (tmp_path / "logs/slow.log").read_text() == "fetching\nunpacking\n"


def test_demo_step_failure_names_the_step_and_shows_its_log(tmp_path):
    script = "\n".join(
        [
            "set -euo pipefail",
            "log() { printf 'demo: %s\\n' \"$*\" >&2; }",
            "readonly logs=logs heartbeat=5",
            "mkdir -p logs",
            _demo_step_functions(),
            "spawn broken sh -c 'echo the reason; exit 3'",
            "await broken",
            "echo not reached",
        ]
    )
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "not reached" not in proc.stdout
    assert re.search(r"^demo: \[broken\] FAILED after \d+s", proc.stderr, re.M), proc.stderr
    assert "the reason" in proc.stderr


def test_bench_parse_times_steps_roles_and_silence():
    bench = _bench()
    lines = [
        (0.0, "demo: [total] started"),
        (0.1, "demo: [venv] started: output in .demo/logs/venv.log"),
        (20.0, "demo: [venv] running, 20s: Collecting mlflow-skinny"),
        (31.0, "demo: [venv] done in 31s"),
        (31.5, "demo: [converge] started"),
        (32.0, "PLAY [Run the mlops.mlflow site playbook] ****"),
        (33.0, "TASK [Gathering Facts] ****"),
        (35.0, "TASK [mlops.mlflow.postgres : Install packages] ****"),
        (95.0, "TASK [mlops.mlflow.mlflow_server : Install mlflow] ****"),
        (200.0, "RUNNING HANDLER [mlops.mlflow.mlflow_server : Restart mlflow] ****"),
        (203.0, "PLAY RECAP ****"),
        (204.0, "demo: [converge] done in 172s"),
        (205.0, "demo: [smoke] started"),
    ]
    parsed = bench.parse(lines)
    assert parsed["order"] == ["total", "venv", "converge", "smoke"]
    assert parsed["steps"]["venv"] == {"started_at_s": 0.1, "heartbeats": 1, "seconds": 31}
    assert parsed["unfinished"] == ["total", "smoke"]
    assert parsed["roles_s"] == {"mlflow_server": 108.0, "postgres": 60.0, "(play)": 2.0}
    assert parsed["longest_silence"] == {"seconds": 105.0, "after": lines[8][1]}
    assert parsed["slowest_tasks"][0] == {"task": "mlflow_server : Install mlflow", "seconds": 105.0}
    assert len(parsed["slowest_tasks"]) == 4
    data = {
        "settings": {"fresh_image": True},
        "summary": {"exit_code": 0, "total_s": 300.0, "parsed": parsed},
    }
    assert [ok for _, _, ok in bench.targets(data)] == [True, False, False]
    assert bench.report_section(data)[0] == "## Demo time"
