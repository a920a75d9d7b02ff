"""Converge cost on the user's path: fresh converge vs no-op reconverge vs no-op `--check --diff`.

Run: .venv/bin/python bench/converge_cost.py [--tiny] [--rounds N] [--check-rounds N] [--budget-min M] [--keep]

Measures what a user runs, not the checkout: the collection tarball is built from the working
tree (`ansible-galaxy collection build`) and installed with `ansible-galaxy collection install
--no-deps -p <tmp>/collections`; each variant gets an inventory directory of its own (all four
groups on one host, the mlops_* secrets in group_vars/all, as scripts/demo writes them) and
`ansible-playbook mlops.mlflow.site -i inventory` runs from that directory with ANSIBLE_CONFIG
unset and no ANSIBLE_* variable from the caller. The only additions are ANSIBLE_COLLECTIONS_PATH
(the installed tarball) and the measurement callbacks (ansible.posix.profile_tasks and
ansible.posix.timer, with PROFILE_TASKS_* for their output); the mitogen variant adds its
strategy (ANSIBLE_STRATEGY_PLUGINS, ANSIBLE_STRATEGY=mitogen_linear).

The target is the systemd container mlops-bench-converge (the flags of the shared molecule
platform, .config/molecule/config.yml, and the warm pip cache volume), reached two ways:
`docker` (community.docker.docker, as the demo) and `ssh` (openssh-server installed in the
container with apt after the fresh converge; an ed25519 key of the run authorized for root;
port 22 published on 127.0.0.1). Variants on each connection: `defaults` (nothing set),
`pipelining` (ansible_pipelining: true in group_vars/all) and `mitogen` (mitogen_linear
strategy; short connection names `docker` / `ssh`, the only ones mitogen accelerates).

Kinds: one fresh converge (docker, defaults: what `make demo` runs), then rounds of a no-op
reconverge and a no-op `--check --diff` for every connection x variant in a new random order
each round, plus (first round) the module-call floor of each: ten `stat` calls. The result is
rewritten after every run, so a run stopped by --budget-min (no new run starts after it) still
leaves its figures, marked with the rounds completed.

--tiny runs the same measurement on localhost (connection `local`, variants defaults and
mitogen, one floor) with a small throwaway playbook and the same installed tarball (no Docker):
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
import sysconfig
import tempfile
import time
from pathlib import Path

import _common as common
import yaml
from conftest import clean_ansible_env

NAME = "converge_cost"
CONTAINER = "mlops-bench-converge"
GROUPS = ("mlflow_db", "mlflow_object_store", "mlflow_server", "mlflow_proxy")
# Issue #19: a no-op reconverge (and a no-op --check --diff) <= 20 s and <= 10 % of a fresh converge, changed=0.
TARGETS = {"over_fresh_max": 0.10, "max_s": 20.0}
TARGET_VARIANTS = ("defaults", "pipelining")
VARIANTS = ("defaults", "pipelining", "mitogen")
TINY_VARIANTS = ("defaults", "mitogen")  # --tiny: the plain path and the strategy plugin path
KINDS = ("noop", "check")
FLOOR_CALLS = 10
CALLBACKS = "ansible.posix.profile_tasks,ansible.posix.timer"
MITOGEN_STRATEGY = Path(sysconfig.get_paths()["purelib"]) / "ansible_mitogen" / "plugins" / "strategy"
_TASK_LINE = re.compile(r"^(?P<name>.*?) -{3,} *(?P<secs>\d+\.\d+)s$")
_RECAP = re.compile(r"^(?P<host>\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)")
_TIMER = re.compile(r"Playbook run took (\d+) days, (\d+) hours, (\d+) minutes, (\d+) seconds")


# --------------------------------------------------------------------------- the user's collection


def install_collection(work: Path) -> Path:
    """Build the tarball from the working tree and install it as a user does; the collections path."""
    build, collections = work / "build", work / "collections"
    galaxy = str(common.VENV_BIN / "ansible-galaxy")
    env = clean_ansible_env(collections)
    subprocess.run(
        [galaxy, "collection", "build", "--force", "--output-path", str(build), str(common.REPO)],
        capture_output=True,
        check=True,
        env=env,
        cwd=work,
    )
    (tarball,) = build.glob("mlops-mlflow-*.tar.gz")
    subprocess.run(
        [galaxy, "collection", "install", "--no-deps", "-p", str(collections), str(tarball)],
        capture_output=True,
        check=True,
        env=env,
        cwd=work,
    )
    assert (collections / "ansible_collections" / "mlops" / "mlflow" / "MANIFEST.json").is_file()
    return collections


# --------------------------------------------------------------------------- the target container


def docker_run_argv(name: str, ssh_port: int) -> list[str]:
    """`docker run` for the shared molecule platform (.config/molecule/config.yml), sshd published on loopback."""
    platform = yaml.safe_load((common.REPO / ".config/molecule/config.yml").read_text())["platforms"][0]
    argv = ["docker", "run", "-d", "--name", name, "--hostname", name, "-p", f"127.0.0.1:{ssh_port}:22"]
    argv += [f"--cap-add={cap}" for cap in platform.get("capabilities", [])]
    argv += [f"--security-opt={opt}" for opt in platform.get("security_opts", [])]
    if platform.get("cgroupns_mode"):
        argv.append(f"--cgroupns={platform['cgroupns_mode']}")
    argv += [f"--tmpfs={path}" for path in platform.get("tmpfs", [])]
    argv += [f"--volume={volume}" for volume in platform.get("volumes", [])]
    argv += [f"--env={key}={value}" for key, value in platform.get("env", {}).items()]
    return [*argv, platform["image"], *platform["command"].split()]


def start_container(name: str, ssh_port: int) -> None:
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    subprocess.run(docker_run_argv(name, ssh_port), capture_output=True, check=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["docker", "exec", name, "systemctl", "is-system-running"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(1)
    raise RuntimeError(f"systemd in {name} did not come up")


def enable_ssh(work: Path, name: str, ssh_port: int) -> Path:
    """openssh-server in the container (apt), this run's ed25519 key authorized for root; the key path."""
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, capture_output=True)
    script = (
        "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -qq;"
        " apt-get install -y -qq --no-install-recommends openssh-server >/dev/null;"
        " install -d -m 0700 /root/.ssh; cat > /root/.ssh/authorized_keys; chmod 0600 /root/.ssh/authorized_keys;"
        " systemctl enable --now ssh >/dev/null 2>&1; systemctl restart ssh"
    )
    subprocess.run(
        ["docker", "exec", "-i", name, "sh", "-c", script],
        input=(work / "id_ed25519.pub").read_text(),
        text=True,
        capture_output=True,
        check=True,
    )
    argv = ["ssh", "-i", str(key), "-p", str(ssh_port), "-o", "StrictHostKeyChecking=no"]
    argv += ["-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "root@127.0.0.1", "true"]
    deadline = time.monotonic() + 60
    while subprocess.run(argv, capture_output=True, check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError("sshd in the container does not accept the key")
        time.sleep(1)
    return key


# --------------------------------------------------------------------------- the user's inventories


def user_secrets() -> dict:
    token = secrets.token_urlsafe
    return {
        "mlops_db_password": token(18),
        "mlops_s3_admin_access_key": "ADMIN" + secrets.token_hex(8).upper(),
        "mlops_s3_admin_secret_key": token(24),
        "mlops_s3_mlflow_access_key": "MLFLOW" + secrets.token_hex(8).upper(),
        "mlops_s3_mlflow_secret_key": token(24),
        "mlops_users": [{"name": "bench", "password": token(18)}],
    }


def connection_vars(connection: str, variant: str, ssh: dict) -> dict:
    """Host variables of one connection x variant (mitogen knows connections by their short names)."""
    if connection == "local":
        return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    host = {"ansible_python_interpreter": "/usr/bin/python3"}
    if connection == "docker":
        host["ansible_connection"] = "docker" if variant == "mitogen" else "community.docker.docker"
    else:
        host |= {
            "ansible_connection": "ssh",
            "ansible_host": "127.0.0.1",
            "ansible_port": ssh["port"],
            "ansible_user": "root",
            "ansible_ssh_private_key_file": ssh["key"],
            # A throwaway container behind a fresh port: no known_hosts entry to check it against.
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            # mitogen checks host keys itself, from this setting, not from the ssh arguments.
            "ansible_host_key_checking": False,
        }
    return host


def write_inventory(project: Path, host: str, host_vars: dict, all_vars: dict, secret_vars: dict) -> Path:
    """<project>/inventory: hosts.yml (all four groups on one host) and group_vars/all, as the demo's."""
    inventory = project / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    hosts = {
        "all": {
            "hosts": {host: host_vars},
            "vars": all_vars,
            "children": {group: {"hosts": {host: {}}} for group in GROUPS},
        }
    }
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    secrets_file = inventory / "group_vars" / "all" / "secrets.yml"
    secrets_file.write_text(yaml.safe_dump(secret_vars))
    secrets_file.chmod(0o600)
    return inventory


def projects(work: Path, connections: list[str], host: str, ssh: dict, *, tiny: bool) -> dict[str, Path]:
    """One user directory per connection/variant; the same secrets in all (so each is a no-op of the fresh one)."""
    secret_vars = {} if tiny else user_secrets()
    all_vars = {} if tiny else {"mlops_public_hostname": "localhost"}
    out = {}
    for connection in connections:
        for variant in TINY_VARIANTS if tiny else VARIANTS:
            project = work / f"{connection}-{variant}"
            inventory = write_inventory(project, host, connection_vars(connection, variant, ssh), all_vars, secret_vars)
            if variant == "pipelining":
                (inventory / "group_vars" / "all" / "connection.yml").write_text("ansible_pipelining: true\n")
            out[f"{connection}/{variant}"] = project
    return out


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
    plays = [{"name": "Tiny converge", "hosts": "all", "gather_facts": True, "tasks": tasks}]
    path = work / "tiny.yml"
    path.write_text(yaml.safe_dump(plays, sort_keys=False))
    return path


def floor_playbook(work: Path) -> Path:
    """Ten stat calls: the cost of one remote module call on this connection, nothing else."""
    tasks = [
        {"name": f"Stat a file ({i})", "ansible.builtin.stat": {"path": "/etc/hostname"}} for i in range(FLOOR_CALLS)
    ]
    path = work / "floor.yml"
    path.write_text(
        yaml.safe_dump([{"name": "Module call floor", "hosts": "all", "gather_facts": False, "tasks": tasks}])
    )
    return path


# --------------------------------------------------------------------------- running


def user_env(collections: Path, variant: str) -> dict[str, str]:
    """The caller's environment without any ANSIBLE_*: the installed collection and the callbacks only."""
    extra = {
        "ANSIBLE_CALLBACKS_ENABLED": CALLBACKS,
        "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "10000",
        "PROFILE_TASKS_SUMMARY_ONLY": "true",
    }
    if variant == "mitogen":
        extra |= {"ANSIBLE_STRATEGY_PLUGINS": str(MITOGEN_STRATEGY), "ANSIBLE_STRATEGY": "mitogen_linear"}
    env = clean_ansible_env(collections, extra)
    env.pop("ANSIBLE_NOCOLOR", None)  # output only, and stdout is a pipe: leave it as a user's run has it
    return env


def run(key: str, kind: str, project: Path, playbook: str, collections: Path, logs: Path) -> dict:
    """One `ansible-playbook <playbook> -i inventory` from the user's directory `project`; parsed."""
    variant = key.split("/", 1)[1]
    argv = [str(common.VENV_BIN / "ansible-playbook"), playbook, "-i", "inventory"]
    argv += ["--check", "--diff"] if kind == "check" else []
    t0 = time.monotonic()
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=user_env(collections, variant), cwd=project, check=False
    )
    wall = time.monotonic() - t0
    log = logs / f"{len(list(logs.iterdir())):02d}-{key.replace('/', '-')}-{kind}.log"
    log.write_text(proc.stdout + proc.stderr)
    parsed = parse(proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError(f"{key} {kind} failed (rc={proc.returncode}); log: {log}\n{proc.stdout[-3000:]}")
    return {"variant": key, "kind": kind, "wall_s": wall, "loadavg_1m": round(os.getloadavg()[0], 2), **parsed}


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


def kind_summary(fresh: dict, mine: list[dict], top: int) -> dict:
    per_task: dict[str, list[float]] = {}
    for r in mine:
        for task in r["tasks"]:
            per_task.setdefault(task["name"], []).append(task["s"])
    medians = {name: common.median(values) for name, values in per_task.items()}
    by_role: dict[str, float] = {}
    for name, secs in medians.items():
        by_role[role_of(name)] = by_role.get(role_of(name), 0.0) + secs
    return {
        "runs": len(mine),
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


def summarize(fresh: dict, runs: list[dict], floors: dict[str, list[float]], top: int) -> tuple[dict, dict]:
    summary = {
        "fresh": {
            "variant": fresh["variant"],
            "wall_s": fresh["wall_s"],
            "recap": fresh["recap"],
            "tasks_timed": fresh["tasks_timed"],
        },
        "variants": {},
    }
    for key in dict.fromkeys(r["variant"] for r in runs):
        entry = {}
        for kind in KINDS:
            mine = [r for r in runs if r["variant"] == key and r["kind"] == kind]
            if mine:
                entry[kind] = kind_summary(fresh, mine, top)
        if floors.get(key):
            entry["module_call_floor_s"] = common.median(floors[key])
        summary["variants"][key] = entry
    rows = []
    for key, entry in summary["variants"].items():
        if key.split("/", 1)[1] not in TARGET_VARIANTS:
            continue
        for kind, k in entry.items():
            if kind not in KINDS:
                continue
            changed_zero = all(c == 0 for c in k["changed"])
            rows.append(
                {
                    "variant": key,
                    "kind": kind,
                    "wall_s": k["wall_s"],
                    "max_s": TARGETS["max_s"],
                    "s_met": k["wall_s"] <= TARGETS["max_s"],
                    "over_fresh": k["over_fresh"],
                    "over_fresh_max": TARGETS["over_fresh_max"],
                    "over_fresh_met": k["over_fresh"] <= TARGETS["over_fresh_max"],
                    "changed_zero": changed_zero,
                    "met": changed_zero
                    and k["wall_s"] <= TARGETS["max_s"]
                    and k["over_fresh"] <= TARGETS["over_fresh_max"],
                }
            )
    all_changed = [c for e in summary["variants"].values() for kind in KINDS if kind in e for c in e[kind]["changed"]]
    targets = {
        "rows": rows,
        "max_s": TARGETS["max_s"],
        "over_fresh_max": TARGETS["over_fresh_max"],
        "evaluated_on": [f"{c}/{v}" for c in ("docker", "ssh") for v in TARGET_VARIANTS],
        "changed_zero_everywhere": bool(all_changed) and all(c == 0 for c in all_changed),
    }
    return summary, targets


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
    parser = common.parser(__doc__.splitlines()[0], rounds=2)
    parser.add_argument("--check-rounds", type=int, help="rounds that include the --check --diff kind (default all)")
    parser.add_argument("--budget-min", type=float, help="start no new run after this many minutes")
    parser.add_argument("--keep", action="store_true", help=f"keep the container {CONTAINER} afterwards")
    args = parser.parse_args()
    if args.tiny:
        args.rounds = 1
    check_rounds = args.rounds if args.check_rounds is None else min(args.check_rounds, args.rounds)
    started, machine = time.monotonic(), common.machine()
    work = Path(tempfile.mkdtemp(prefix="bench-converge-"))
    # Next to the result: a --tiny smoke run (--out in a temp dir) leaves a real run's logs alone.
    logs = (args.out or common.RESULTS_DIR / f"{NAME}.json").parent / "converge-logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    runs: list[dict] = []
    floors: dict[str, list[float]] = {}
    state = {"rounds_completed": 0, "stopped_by_budget": False, "complete": False, "failures": []}
    fresh = None

    def over_budget() -> bool:
        if args.budget_min is not None and time.monotonic() - started > args.budget_min * 60:
            state["stopped_by_budget"] = True
            return True
        return False

    def write() -> None:
        summary, targets = summarize(fresh, runs, floors, top=15)
        result = {
            "versions": {"docker": _docker_version() if not args.tiny else "not used", "mitogen": _dist("mitogen")},
            "settings": {
                "target": target,
                "path": (
                    "the user's: tarball built from the working tree, installed with ansible-galaxy collection install"
                    f" --no-deps -p <tmp>/collections; `ansible-playbook {Path(playbook).name} -i inventory` from"
                    " the inventory's directory, ANSIBLE_CONFIG unset, no ANSIBLE_* of the caller"
                ),
                "env_additions": (
                    "ANSIBLE_COLLECTIONS_PATH, ANSIBLE_CALLBACKS_ENABLED="
                    + CALLBACKS
                    + " (+ PROFILE_TASKS_*); mitogen: ANSIBLE_STRATEGY_PLUGINS, ANSIBLE_STRATEGY=mitogen_linear"
                ),
                "connections": connections,
                "variants": {
                    "defaults": "nothing set",
                    "pipelining": "ansible_pipelining: true in group_vars/all",
                    "mitogen": "mitogen_linear strategy, short connection names (docker, ssh)",
                },
                "rounds": args.rounds,
                "check_rounds": check_rounds,
                **state,
                "callbacks": CALLBACKS,
                "checkout": git_state(),
                "pip_cache": "docker volume mlops-mlflow-pip-cache (warm)",
                "logs": str(logs),
            },
            "summary": summary,
            "targets": targets,
            "runs": [{k: v for k, v in r.items() if k != "tasks"} for r in [fresh, *runs]],
            "fresh_tasks": sorted(fresh["tasks"], key=lambda t: -t["s"])[:15],
        }
        common.write_result(NAME, args, started, machine, **result)

    try:
        collections = install_collection(work)
        if args.tiny:
            connections, host, ssh = ["local"], "localhost", {}
            playbook = str(tiny_playbook(work))
            target = "localhost (connection local), tiny playbook (--tiny)"
        else:
            connections, host = ["docker", "ssh"], CONTAINER
            ssh = {"port": common.find_free_port()}
            playbook = "mlops.mlflow.site"
            target = f"{CONTAINER} (systemd), mlops.mlflow.site, all four groups on one host"
            common.log(NAME, f"starting {CONTAINER} (ssh on 127.0.0.1:{ssh['port']})")
            start_container(CONTAINER, ssh["port"])
        ssh["key"] = str(work / "id_ed25519")
        dirs = projects(work, connections, host, ssh, tiny=args.tiny)
        first = f"{connections[0]}/defaults"
        common.log(NAME, f"fresh converge ({first})")
        fresh = run(first, "fresh", dirs[first], playbook, collections, logs)
        if not args.tiny:
            common.log(NAME, "installing openssh-server in the container")
            enable_ssh(work, CONTAINER, ssh["port"])
        floor = str(floor_playbook(work))
        for rnd in range(args.rounds):
            kinds = ["noop", "check"] if rnd < check_rounds else ["noop"]
            todo = [(key, kind) for key in dirs for kind in kinds]
            todo += [(key, "floor") for key in list(dirs)[: 1 if args.tiny else None]] if rnd == 0 else []
            for key, kind in random.sample(todo, len(todo)):
                if over_budget():
                    break
                common.log(NAME, f"round {rnd + 1}/{args.rounds}: {key} {kind}")
                try:
                    if kind == "floor":
                        tasks = run(key, kind, dirs[key], floor, collections, logs)["tasks"]
                        floors.setdefault(key, []).append(common.median(t["s"] for t in tasks))
                    else:
                        runs.append(run(key, kind, dirs[key], playbook, collections, logs))
                except RuntimeError as error:  # one failing variant must not lose the others' figures
                    common.log(NAME, str(error).splitlines()[0])
                    state["failures"].append({"variant": key, "kind": kind, "error": str(error)[:2000]})
                write()
            else:
                state["rounds_completed"] = rnd + 1
                continue
            break
        state["complete"] = state["rounds_completed"] == args.rounds
        write()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not args.tiny and not args.keep:
            subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True, check=False)
    print(json.dumps(summarize(fresh, runs, floors, top=15)[1], indent=1))


def _dist(name: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _docker_version() -> str:
    proc = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True)
    return proc.stdout.strip() or "unavailable"


if __name__ == "__main__":
    main()
