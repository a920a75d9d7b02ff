"""Plumbing shared by the benches: paths, options, the machine and versions, statistics, results.

Every bench writes one JSON result (build/bench/<name>.json by default) that carries the
machine, the versions and the settings next to the numbers; bench/report.py turns those
files into docs/benchmarks.md and the plots.
"""

from __future__ import annotations

import argparse
import glob
import importlib.metadata
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "build" / "bench"
VENV_BIN = Path(sys.executable).parent

# The test helpers (tests/support) import `conftest` as a top-level module, and the
# collection's own code resolves as ansible_collections.mlops.mlflow from collections/.
for _path in (REPO / "tests", REPO / "collections"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from conftest import find_free_port, run_playbook  # noqa: E402  (tests/conftest.py)

__all__ = ["REPO", "RESULTS_DIR", "VENV_BIN", "find_free_port", "run_playbook"]


# --------------------------------------------------------------------------- options


def parser(description: str, *, rounds: int) -> argparse.ArgumentParser:
    """Options every bench takes: --tiny, --rounds, --out.

    Also turns SIGTERM into SystemExit, so a bench stopped with `kill` unwinds its ExitStack
    and stops the servers it started instead of leaving them behind.
    """
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--tiny", action="store_true", help="one round on tiny sizes: checks the bench runs, not a figure"
    )
    parser.add_argument("--rounds", type=int, default=rounds, help=f"interleaved rounds (default {rounds})")
    parser.add_argument("--out", type=Path, help="result JSON (default build/bench/<bench>.json)")
    return parser


def write_result(name: str, args: argparse.Namespace, started: float, machine: dict, **fields) -> Path:
    """Write build/bench/<name>.json (or --out): run facts first, then the bench's own fields.

    `started` is the bench's time.monotonic() at start and `machine` its machine() at start
    (load average before the bench loaded the machine). `versions` may be passed to extend
    versions().
    """
    path = args.out or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "bench": name,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "tiny": args.tiny,
        "elapsed_s": round(time.monotonic() - started, 1),
        "machine": machine,
        "versions": versions() | fields.pop("versions", {}),
        **fields,
    }
    path.write_text(json.dumps(result, indent=1, sort_keys=False) + "\n")
    print(f"{name}: wrote {path}", file=sys.stderr)
    return path


def log(name: str, message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {name}: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- machine and versions


def _first_line(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    out = (proc.stdout or proc.stderr).strip().splitlines()
    return out[0] if out else "unavailable"


def machine() -> dict:
    """CPU, memory, kernel and distribution of the host running the bench."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    distro = "unknown"
    if Path("/etc/os-release").exists():
        found = re.search(r'^PRETTY_NAME="?([^"\n]*)', Path("/etc/os-release").read_text(), re.M)
        distro = found.group(1) if found else distro
    return {
        "cpu": cpu,
        "cpus": len(os.sched_getaffinity(0)),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "distro": distro,
        "arch": platform.machine(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]) if found else None


def _version_of(cmd: list[str], after: str = "") -> str:
    """The first dotted version number in a tool's own version line (after `after`)."""
    line = _first_line(cmd)
    found = re.search(r"\d+\.\d+(?:\.\d+)?", line.split(after, 1)[-1] if after else line)
    return found.group(0) if found else line


def versions() -> dict:
    def dist(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    pg = postgres_bin()
    return {
        "mlflow": dist("mlflow"),
        "uvicorn": dist("uvicorn"),
        "nginx": _version_of(["nginx", "-v"]),
        "postgres": _version_of([str(pg), "--version"]) if pg else "not installed",
        "python": platform.python_version(),
        "ansible-core": dist("ansible-core"),
        "seaweedfs": _version_of([str(VENV_BIN / "weed"), "version"], after="GB"),
        "openssl": _version_of(["openssl", "version"]),
    }


# --------------------------------------------------------------------------- statistics


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation): an observed value, also for small samples."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values) -> float:
    values = [v for v in values if v is not None and v == v]
    return statistics.median(values) if values else float("nan")


# --------------------------------------------------------------------------- processes


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _proc_stat(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if Path(f"/proc/{pid}").exists():
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds consumed so far by the process tree `pids` (from process_tree), exited members included.

    Each process adds its own user + system time and that of the children it has reaped
    (PostgreSQL backends come and go; their time moves into the postmaster's cutime/cstime).
    """
    total = 0
    for pid in pids:
        fields = _proc_stat(pid)
        if fields:
            total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return total / _TICK


# --------------------------------------------------------------------------- role templates


def render_role_templates(items: list[dict], workdir: Path) -> dict[str, str]:
    """Render role templates with Ansible itself, from the role's defaults and vars.

    Each item: {"key", "role", "template", "vars"}; `vars` override the role defaults like
    inventory variables would. Returns {key: rendered text}. One ansible-playbook run on
    localhost (nothing is installed or changed outside `workdir`).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    plays = []
    for role in dict.fromkeys(item["role"] for item in items):
        tasks = [
            {
                "name": f"Render {item['key']}",
                "ansible.builtin.template": {
                    "src": str(REPO / "roles" / role / "templates" / item["template"]),
                    "dest": str(workdir / item["key"]),
                    "mode": "0644",
                },
                "vars": item["vars"],
            }
            for item in items
            if item["role"] == role
        ]
        plays.append(
            {
                "name": f"Render {role} templates",
                "hosts": "localhost",
                "gather_facts": False,
                "vars_files": [
                    str(REPO / "roles" / role / "defaults" / "main.yml"),
                    str(REPO / "roles" / role / "vars" / "main.yml"),
                ],
                "tasks": tasks,
            }
        )
    proc = run_playbook(plays, workdir)
    if proc.returncode != 0:
        raise RuntimeError(f"rendering role templates failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return {item["key"]: (workdir / item["key"]).read_text() for item in items}


def role_defaults(role: str) -> dict:
    import yaml

    return yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())
