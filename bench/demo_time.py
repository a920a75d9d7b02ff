"""Demo time: `make demo` the way a newcomer runs it, from a fresh clone with cold caches.

Run: .venv/bin/python bench/demo_time.py [--keep-image] [--out PATH]

Clones this checkout into a temp dir (HEAD, then the working tree's uncommitted changes on top),
then runs `make demo` there with an empty host pip cache (PIP_CACHE_DIR), a new Docker volume
for the container's pip cache (DEMO_PIP_CACHE_VOLUME) and, unless --keep-image, a test image
tag of its own that does not exist yet (TEST_IMAGE), so scripts/build-test-image builds it from
scratch as on a fresh machine. Then `make demo-down`, and the volume, the image and the clone go.
Not simulated: Debian's docker.io and mmdebstrap are already installed on this host.

Every output line is timestamped as it arrives; the steps' seconds come from the demo's own
progress lines ("demo: [STEP] started" / "demo: [STEP] done in Ns"), the seconds per role from
the converge's TASK lines, and the longest silence is the largest gap between two lines.
--tiny keeps the built image (like --keep-image): the same run, minus the image build.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as common

NAME = "demo_time"
CONTAINER = "mlops-mlflow-demo"
TARGETS = {"total_max_s": 360.0, "silence_max_s": 60.0}
_STARTED = re.compile(r"^demo: \[(?P<step>[\w-]+)\] started")
_DONE = re.compile(r"^demo: \[(?P<step>[\w-]+)\] done in (?P<secs>\d+)s$")
_BEAT = re.compile(r"^demo: \[(?P<step>[\w-]+)\] running, (?P<secs>\d+)s")
_FAILED = re.compile(r"^demo: \[(?P<step>[\w-]+)\] FAILED")
# `TASK [mlops.mlflow.postgres : Install packages] ****` or `RUNNING HANDLER [nginx_proxy : Reload nginx]`
_TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?:(?P<role>[\w.]+) : )?(?P<task>.*?)\] \**$")
_END_OF_TASKS = re.compile(r"^(?:PLAY \[|PLAY RECAP)")


# --------------------------------------------------------------------------- parsing


def parse(lines: list[tuple[float, str]]) -> dict:
    """Steps, heartbeats, seconds per role and the longest silence from timestamped output lines.

    `lines` are (seconds since start, line) in arrival order. A step's seconds are the ones its
    "done in" line states; a step that started but never said done is listed in `unfinished`.
    """
    steps: dict[str, dict] = {}
    order: list[str] = []
    roles: dict[str, float] = {}
    tasks: list[tuple[float, str]] = []
    current: tuple[str, str, float] | None = None
    longest = {"seconds": 0.0, "after": ""}
    previous: tuple[float, str] | None = None
    for at, raw in lines:
        line = raw.rstrip("\n")
        if previous is not None and at - previous[0] > longest["seconds"]:
            longest = {"seconds": round(at - previous[0], 1), "after": previous[1][:160]}
        previous = (at, line)
        if found := _STARTED.match(line):
            step = found["step"]
            steps.setdefault(step, {"started_at_s": round(at, 1), "heartbeats": 0})
            order.append(step) if step not in order else None
        elif found := _DONE.match(line):
            steps.setdefault(found["step"], {"heartbeats": 0})["seconds"] = int(found["secs"])
        elif found := _BEAT.match(line):
            steps.setdefault(found["step"], {"heartbeats": 0})["heartbeats"] += 1
        elif found := _FAILED.match(line):
            steps.setdefault(found["step"], {"heartbeats": 0})["failed"] = True
        task = _TASK.match(line)
        if task or _END_OF_TASKS.match(line) or _DONE.match(line):
            if current is not None:
                role, name, since = current
                roles[role] = roles.get(role, 0.0) + at - since
                tasks.append((round(at - since, 1), f"{role} : {name}"))
            role = (task["role"] or "(play)").removeprefix("mlops.mlflow.") if task else ""
            current = (role, task["task"], at) if task else None
    return {
        "order": order,
        "steps": steps,
        "unfinished": [step for step in order if "seconds" not in steps[step]],
        "roles_s": {role: round(secs, 1) for role, secs in sorted(roles.items(), key=lambda kv: -kv[1])},
        "slowest_tasks": [{"task": name, "seconds": secs} for secs, name in sorted(tasks, key=lambda t: -t[0])[:10]],
        "longest_silence": longest,
    }


# --------------------------------------------------------------------------- report


def targets(data: dict) -> list[tuple[str, str, bool]]:
    """(target, measured, met) rows for bench/report.py."""
    summary = data["summary"]
    total = summary["total_s"]
    silence = summary["parsed"]["longest_silence"]["seconds"]
    unfinished, order = summary["parsed"]["unfinished"], summary["parsed"]["order"]
    return [
        (
            f"`make demo` on a fresh machine <= {TARGETS['total_max_s']:.0f} s",
            f"{total:.0f} s" + ("" if data["settings"]["fresh_image"] else " (image kept)"),
            data["settings"]["fresh_image"] and summary["exit_code"] == 0 and total <= TARGETS["total_max_s"],
        ),
        (
            f"no silent stretch over {TARGETS['silence_max_s']:.0f} s",
            f"longest {silence:.0f} s",
            silence <= TARGETS["silence_max_s"],
        ),
        (
            "every step prints its start and its seconds",
            ("unfinished: " + ", ".join(unfinished)) if unfinished else "all steps" if order else "no progress lines",
            bool(order) and not unfinished,
        ),
    ]


def report_section(data: dict) -> list[str]:
    """Markdown lines for docs/benchmarks.md."""
    summary, parsed = data["summary"], data["summary"]["parsed"]
    settings = data["settings"]
    out = [
        "## Demo time",
        "",
        "`bench/demo_time.py`: `make demo` as a newcomer runs it, from a fresh clone with an empty host pip "
        "cache, a new container pip-cache volume and "
        + ("a test image built from scratch" if settings["fresh_image"] else "the already built test image")
        + "; Debian's docker.io and mmdebstrap were already installed. Seconds from the demo's own progress lines.",
        "",
        f"Total: **{summary['total_s']:.0f} s** (exit code {summary['exit_code']}); "
        f"longest silence {parsed['longest_silence']['seconds']:.0f} s.",
        "",
        "| step | seconds | heartbeats |",
        "|---|---:|---:|",
    ]
    for step in parsed["order"]:
        info = parsed["steps"][step]
        out.append(f"| {step} | {info.get('seconds', '-')} | {info.get('heartbeats', 0)} |")
    if parsed["roles_s"]:
        out += ["", "Converge seconds per role (from the TASK lines):", "", "| role | seconds |", "|---|---:|"]
        out += [f"| {role} | {secs:.0f} |" for role, secs in parsed["roles_s"].items()]
        out += ["", "Slowest converge tasks:", "", "| task | seconds |", "|---|---:|"]
        out += [f"| {item['task']} | {item['seconds']:.0f} |" for item in parsed.get("slowest_tasks", [])]
    out += ["", "| target | measured | |", "|---|---|---|"]
    out += [f"| {name} | {measured} | {'met' if ok else 'MISSED'} |" for name, measured, ok in targets(data)]
    return [*out, ""]


# --------------------------------------------------------------------------- the run


def fresh_clone(dest: Path, *, head_only: bool = False) -> None:
    """HEAD of this checkout plus its uncommitted changes (modified, deleted and untracked files)."""
    subprocess.run(["git", "clone", "-q", str(common.REPO), str(dest)], check=True)
    if head_only:
        return

    def files(*flags: str) -> list[str]:
        out = subprocess.run(
            ["git", "-C", str(common.REPO), "ls-files", "-z", *flags], check=True, capture_output=True, text=True
        ).stdout
        return [name for name in out.split("\0") if name]

    deleted = set(files("-d"))
    for name in files("-m", "-o", "--exclude-standard"):
        if name in deleted:
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(common.REPO / name, target)
    for name in deleted:
        (dest / name).unlink(missing_ok=True)


def quiet(*argv: str) -> None:
    subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_demo(clone: Path, env: dict) -> tuple[int, list[tuple[float, str]], float]:
    started = time.monotonic()
    lines: list[tuple[float, str]] = []
    proc = subprocess.Popen(
        ["make", "demo"], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    for line in proc.stdout:
        at = time.monotonic() - started
        lines.append((round(at, 2), line.rstrip("\n")))
        print(f"{at:6.0f}s | {line}", end="", file=sys.stderr, flush=True)
    code = proc.wait()
    return code, lines, time.monotonic() - started


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], rounds=1)
    parser.add_argument("--keep-image", action="store_true", help="reuse the built test image (no image build)")
    parser.add_argument(
        "--head-only", action="store_true", help="HEAD without the uncommitted changes (a before/after of the demo)"
    )
    args = parser.parse_args()
    started, machine = time.monotonic(), common.machine()
    fresh_image = not (args.keep_image or args.tiny)
    tag = f"{os.getpid()}-{int(time.time())}"
    volume = f"mlops-mlflow-demo-bench-{tag}"
    image = f"mlops-mlflow-demo-bench/debian:{tag}" if fresh_image else "mlops-mlflow-test/debian:bookworm"
    with tempfile.TemporaryDirectory(prefix="demo-time-") as tmp:
        clone, pip_cache = Path(tmp) / "demo-clone", Path(tmp) / "pip-cache"
        pip_cache.mkdir()
        fresh_clone(clone, head_only=args.head_only)
        if args.head_only:  # a demo from before DEMO_PIP_CACHE_VOLUME: its cold cache all the same
            demo = clone / "scripts/demo"
            demo.write_text(demo.read_text().replace("mlops-mlflow-pip-cache:", f"{volume}:"))
        env = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "VIRTUAL_ENV"))}
        env |= {"PIP_CACHE_DIR": str(pip_cache), "DEMO_PIP_CACHE_VOLUME": volume, "TEST_IMAGE": image}
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(common.REPO)))
        quiet("docker", "rm", "-f", CONTAINER)
        common.log(NAME, f"make demo in {clone} (image {image}, volume {volume})")
        try:
            code, lines, total = run_demo(clone, env)
        finally:
            subprocess.run(["make", "demo-down"], cwd=clone, env=env, check=False)
            quiet("docker", "volume", "rm", volume)
            if fresh_image:
                quiet("docker", "image", "rm", image)
    parsed = parse(lines)
    seconds = {step: parsed["steps"][step].get("seconds") for step in parsed["order"]}
    common.log(NAME, f"exit {code}, {total:.0f} s; steps {seconds}")
    data = {
        "settings": {
            "fresh_image": fresh_image,
            "head_only": args.head_only,
            "image": image,
            "pip_cache": "empty",
            "container_pip_cache": "new volume",
        },
        "summary": {"exit_code": code, "total_s": round(total, 1), "parsed": parsed},
        "output_tail": [line for _, line in lines[-40:]],
    }
    data["targets"] = [{"target": t, "measured": m, "met": ok} for t, m, ok in targets(data)]
    common.write_result(NAME, args, started, machine, **data)
    sys.exit(0 if code == 0 else 1)


if __name__ == "__main__":
    main()
