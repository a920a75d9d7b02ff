"""Converge cost: fresh converge vs no-op reconverge vs no-op `--check --diff` of the all-in-one stack.

Run: .venv/bin/python bench/converge_cost.py [--tiny] [--rounds N] [--keep]

Starts the systemd container mlops-bench-converge with the flags of the shared molecule
platform (.config/molecule/config.yml; image from scripts/build-test-image, the warm pip cache
volume), then runs site.yml against it with every role in one host (the all-in-one Pi shape,
laid out by the collection from the groups): one fresh converge, then rounds of a no-op reconverge and a
no-op `--check --diff`, in a new random order each round. The profile_tasks and timer
callbacks time every task; the report names the tasks that make the no-op slow.

--tiny runs the same measurement on localhost with a small throwaway playbook (no Docker):
it checks the bench code, not the stack.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as common
import yaml

NAME = "converge_cost"
CONTAINER = "mlops-bench-converge"
GROUPS = ("mlflow_db", "mlflow_object_store", "mlflow_server", "mlflow_proxy")
TARGETS = {"noop_over_fresh_max": 0.15, "noop_max_s": 30.0}
KINDS = ["noop", "check", "noop_nopipelining"]
FLOOR_CALLS = 10
_TASK_LINE = re.compile(r"^(?P<name>.*?) -{3,} *(?P<secs>\d+\.\d+)s$")
_RECAP = re.compile(r"^(?P<host>\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)")
_TIMER = re.compile(r"Playbook run took (\d+) days, (\d+) hours, (\d+) minutes, (\d+) seconds")


# --------------------------------------------------------------------------- targets


def docker_run_argv(name: str) -> list[str]:
    """`docker run` for the shared molecule platform (.config/molecule/config.yml)."""
    platform = yaml.safe_load((common.REPO / ".config/molecule/config.yml").read_text())["platforms"][0]
    argv = ["docker", "run", "-d", "--name", name, "--hostname", name]
    argv += [f"--cap-add={cap}" for cap in platform.get("capabilities", [])]
    argv += [f"--security-opt={opt}" for opt in platform.get("security_opts", [])]
    if platform.get("cgroupns_mode"):
        argv.append(f"--cgroupns={platform['cgroupns_mode']}")
    argv += [f"--tmpfs={path}" for path in platform.get("tmpfs", [])]
    argv += [f"--volume={volume}" for volume in platform.get("volumes", [])]
    argv += [f"--env={key}={value}" for key, value in platform.get("env", {}).items()]
    return [*argv, platform["image"], *platform["command"].split()]


def start_container(name: str) -> None:
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    subprocess.run(docker_run_argv(name), capture_output=True, check=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["docker", "exec", name, "systemctl", "is-system-running"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(1)
    raise RuntimeError(f"systemd in {name} did not come up")


def container_inventory(work: Path, name: str) -> Path:
    """The all-in-one inventory for the container: groups and mlops_* knobs (the collection lays it out)."""
    hosts = {name: {"ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3"}}
    inventory = {
        "all": {
            "hosts": hosts,
            "vars": {"mlops_public_hostname": "localhost"},
            "children": {group: {"hosts": {name: None}} for group in GROUPS},
        }
    }
    (work / "host_vars").mkdir()
    token = secrets.token_urlsafe
    host_vars = {
        "mlops_db_password": token(18),
        "mlops_s3_admin_access_key": "ADMIN" + secrets.token_hex(8).upper(),
        "mlops_s3_admin_secret_key": token(24),
        "mlops_s3_mlflow_access_key": "MLFLOW" + secrets.token_hex(8).upper(),
        "mlops_s3_mlflow_secret_key": token(24),
        "mlops_users": [{"name": "bench", "password": token(18)}],
    }
    (work / "host_vars" / f"{name}.yml").write_text(yaml.safe_dump(host_vars))
    (work / "host_vars" / f"{name}.yml").chmod(0o600)
    path = work / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


def tiny_playbook(work: Path) -> Path:
    """A few file tasks on localhost: enough to exercise fresh/no-op/check and the parsing."""
    target = work / "target"
    tasks = [
        {
            "name": "Create a directory",
            "ansible.builtin.file": {"path": str(target), "state": "directory", "mode": "0755"},
        },
        {
            "name": "Write a file",
            "ansible.builtin.copy": {"dest": str(target / "a.txt"), "content": "a\nb\n", "mode": "0644"},
        },
        {
            "name": "Set a line",
            "ansible.builtin.lineinfile": {"path": str(target / "a.txt"), "line": "b", "mode": "0644"},
        },
        {
            "name": "Run a command once",
            "ansible.builtin.command": {"cmd": f"touch {target / 'done'}", "creates": str(target / "done")},
        },
    ]
    plays = [{"name": "Tiny converge", "hosts": "localhost", "gather_facts": True, "tasks": tasks}]
    path = work / "tiny.yml"
    path.write_text(yaml.safe_dump(plays, sort_keys=False))
    return path


def floor_playbook(work: Path, hosts: str) -> Path:
    """Ten stat calls: the cost of one remote module call on this connection, nothing else."""
    tasks = [
        {"name": f"Stat a file ({i})", "ansible.builtin.stat": {"path": "/etc/hostname"}} for i in range(FLOOR_CALLS)
    ]
    path = work / "floor.yml"
    path.write_text(
        yaml.safe_dump([{"name": "Module call floor", "hosts": hosts, "gather_facts": False, "tasks": tasks}])
    )
    return path


# --------------------------------------------------------------------------- running


def run(kind: str, argv: list[str], logs: Path) -> dict:
    """One ansible-playbook run with the profile_tasks and timer callbacks; parsed.

    Pipelining is on, as ansible.cfg sets it for SSH and the molecule config for Docker, except
    in the `noop_nopipelining` runs, which show what each task's connection round trips cost.
    """
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_CONFIG": str(common.REPO / "ansible.cfg"),
            "ANSIBLE_PIPELINING": "false" if kind == "noop_nopipelining" else "true",
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks,ansible.posix.timer",
            "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "10000",
            "PROFILE_TASKS_SUMMARY_ONLY": "true",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        }
    )
    extra = {"check": ["--check", "--diff"]}.get(kind, [])
    t0 = time.monotonic()
    proc = subprocess.run([*argv, *extra], capture_output=True, text=True, env=env, cwd=common.REPO, check=False)
    wall = time.monotonic() - t0
    log = logs / f"{len(list(logs.iterdir())):02d}-{kind}.log"
    log.write_text(proc.stdout + proc.stderr)
    parsed = parse(proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed (rc={proc.returncode}); log: {log}\n{proc.stdout[-3000:]}")
    return {"kind": kind, "wall_s": wall, **parsed}


def parse(stdout: str) -> dict:
    recap = {"ok": 0, "changed": 0, "unreachable": 0, "failed": 0, "skipped": 0}
    for line in stdout.splitlines():
        found = _RECAP.match(line)
        if found:
            for key, value in zip(recap, found.groups()[1:], strict=True):
                recap[key] += int(value)
    tail = stdout.split("TASKS RECAP", 1)[-1]
    tasks = []
    for line in tail.splitlines():
        found = _TASK_LINE.match(line.rstrip())
        if found:
            tasks.append({"name": found["name"].strip(), "s": float(found["secs"])})
    timer = _TIMER.search(stdout)
    timer_s = None
    if timer:
        d, h, m, s = (int(x) for x in timer.groups())
        timer_s = ((d * 24 + h) * 60 + m) * 60 + s
    return {"recap": recap, "tasks_timed": len(tasks), "timer_s": timer_s, "tasks": tasks}


def role_of(task_name: str) -> str:
    """profile_tasks names role tasks `<role> : <task>`; the rest are play-level tasks."""
    return task_name.split(" : ", 1)[0] if " : " in task_name else "(play)"


def summarize(fresh: dict, runs: list[dict], top: int) -> dict:
    out = {"fresh": {"wall_s": fresh["wall_s"], "recap": fresh["recap"], "tasks_timed": fresh["tasks_timed"]}}
    for kind in KINDS:
        mine = [r for r in runs if r["kind"] == kind]
        per_task: dict[str, list[float]] = {}
        for r in mine:
            for task in r["tasks"]:
                per_task.setdefault(task["name"], []).append(task["s"])
        medians = {name: common.median(values) for name, values in per_task.items()}
        by_role: dict[str, float] = {}
        for name, secs in medians.items():
            by_role[role_of(name)] = by_role.get(role_of(name), 0.0) + secs
        out[kind] = {
            "wall_s": common.median(r["wall_s"] for r in mine),
            "wall_s_all": [round(r["wall_s"], 2) for r in mine],
            "over_fresh": common.median(r["wall_s"] / fresh["wall_s"] for r in mine),
            "changed": [r["recap"]["changed"] for r in mine],
            "recap": mine[0]["recap"],
            "tasks_timed": mine[0]["tasks_timed"],
            "top_tasks": sorted(({"name": n, "s": s} for n, s in medians.items()), key=lambda t: -t["s"])[:top],
            "by_role_s": dict(sorted(by_role.items(), key=lambda kv: -kv[1])),
            "gather_facts_s": sum(s for n, s in medians.items() if n == "Gathering Facts"),
            "task_median_s": common.median(medians.values()),
            "tasks_over_0_3_s": sum(1 for s in medians.values() if s > 0.3),
            "task_sum_s": sum(medians.values()),
        }
    noop = out["noop"]
    out["targets"] = {
        "noop_over_fresh": noop["over_fresh"],
        "noop_over_fresh_max": TARGETS["noop_over_fresh_max"],
        "noop_over_fresh_met": noop["over_fresh"] < TARGETS["noop_over_fresh_max"],
        "noop_s": noop["wall_s"],
        "noop_max_s": TARGETS["noop_max_s"],
        "noop_s_met": noop["wall_s"] < TARGETS["noop_max_s"],
        "noop_changed_zero": all(c == 0 for c in noop["changed"]),
    }
    return out


def git_state() -> str:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=common.REPO
    ).stdout
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "roles", "playbooks", "plugins"],
        capture_output=True,
        text=True,
        cwd=common.REPO,
    ).stdout
    return head.strip() + (" + uncommitted changes in roles/playbooks/plugins" if dirty.strip() else "")


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], rounds=3)
    parser.add_argument("--keep", action="store_true", help=f"keep the container {CONTAINER} afterwards")
    args = parser.parse_args()
    if args.tiny:
        args.rounds = 1
    started, machine = time.monotonic(), common.machine()
    work = Path(tempfile.mkdtemp(prefix="bench-converge-"))
    logs = common.RESULTS_DIR / "converge-logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    playbook = str(common.VENV_BIN / "ansible-playbook")
    try:
        if args.tiny:
            argv = [playbook, "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}"]
            argv.append(str(tiny_playbook(work)))
            target = "localhost, tiny playbook (--tiny)"
        else:
            common.log(NAME, f"starting {CONTAINER}")
            start_container(CONTAINER)
            argv = [playbook, "-i", str(container_inventory(work, CONTAINER)), "site.yml"]
            target = f"{CONTAINER} (docker, systemd), site.yml, all four groups on one host"
        common.log(NAME, "fresh converge")
        fresh = run("fresh", argv, logs)
        floor_argv = [*argv[:-1], str(floor_playbook(work, "all"))]
        runs, floor = [], []
        for rnd in range(args.rounds):
            for kind in random.sample([*KINDS, "floor"], len(KINDS) + 1):
                common.log(NAME, f"round {rnd + 1}/{args.rounds}: {kind}")
                if kind == "floor":
                    floor.append(common.median(t["s"] for t in run(kind, floor_argv, logs)["tasks"]))
                else:
                    runs.append(run(kind, argv, logs))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not args.tiny and not args.keep:
            subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True, check=False)
    summary = summarize(fresh, runs, top=15)
    summary["module_call_floor_s"] = common.median(floor)
    result = {
        "versions": {"docker": _docker_version()},
        "settings": {
            "target": target,
            "rounds": args.rounds,
            "callbacks": "ansible.posix.profile_tasks, ansible.posix.timer",
            "checkout": git_state(),
            "pip_cache": "docker volume mlops-mlflow-pip-cache (warm)",
            "logs": str(logs),
        },
        "summary": summary,
        "targets": summary.pop("targets"),
        "runs": [{k: v for k, v in r.items() if k != "tasks"} for r in [fresh, *runs]],
        "fresh_tasks": sorted(fresh["tasks"], key=lambda t: -t["s"])[:15],
    }
    common.write_result(NAME, args, started, machine, **result)
    print(json.dumps(result["targets"], indent=1))


def _docker_version() -> str:
    proc = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True)
    return proc.stdout.strip() or "unavailable"


if __name__ == "__main__":
    main()
