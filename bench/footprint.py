"""Resident memory of the all-in-one stack, idle and under 16 clients: role defaults vs a Pi profile.

Run: .venv/bin/python bench/footprint.py [--tiny] [--rounds N] [--duration S]

One stack per profile runs side by side on 127.0.0.1, each the all-in-one Pi shape:
PostgreSQL (tests/support, the role's tuning plus the profile's), SeaweedFS (tests/support's
`weed server -s3`), the mlflow server with the flags roles/mlflow_server renders and its
artifacts in SeaweedFS, and nginx with our TLS site. Bursts of mixed client load (log_batch,
get_run, search_runs, 10 MB artifact upload and download, in turn) go to one stack at a time,
in a new random order each round; memory is sampled from /proc/<pid>/smaps of each service's process tree.

Per service: RSS summed over its processes (an upper bound: shared pages counted in every
process), PSS summed (shared pages split with every process on the host that maps them, so
it shrinks when other programs share the venv), and "resident": private pages plus each
shared mapping counted once within the stack, which is what the service needs in RAM on a
host of its own. The stack total counts shared mappings once across all services.
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
import shutil
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import _common as common
import _stack as stack
from _load import Endpoint, LoadGenerator, prepare
from support.s3_servers import _remove_weed_sockets, start_seaweedfs

NAME = "footprint"
MIB = 1024 * 1024


def _pi_profile() -> dict:
    """The role settings of mlops_profile: pi, as the layout filter hands them to the roles."""
    spec = importlib.util.spec_from_file_location("mlops_layout", common.REPO / "plugins" / "filter" / "layout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: value for per_group in module.PROFILES["pi"].values() for name, value in per_group.items()}


PI = _pi_profile()
# Role variables per profile. `seaweedfs_args` are proposed `weed server` flags (no role
# variable yet), measured to size a recommendation.
PROFILES = {
    "default": {},
    "pi": PI,
    "pi_no_weed_limit": PI | {"object_store_seaweedfs_memory_limit_mb": 0},
    "pi_weed_limits": PI | {"seaweedfs_args": ["-s3.concurrentUploadLimitMB=64", "-s3.readerCacheSizeMB=64"]},
}
TINY_PROFILES = ("default", "pi")
MIX = ("log_batch", "get_run", "search_runs", "artifact_upload", "artifact_download")
TARGET_MIB = 1024
WEED_DEFAULTS = common.role_defaults("object_store")

_HEADER = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def smaps(pid: int) -> list[tuple[tuple, dict[str, int]]]:
    """[(mapping key, {field: kB})] of one process; [] if it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps").read_text()
    except OSError:
        return []
    out, fields = [], None
    for line in text.splitlines():
        if _HEADER.match(line):
            parts = line.split(None, 5)
            span, offset, dev, inode = parts[0], parts[2], parts[3], parts[4]
            # File and shared-memory mappings are the same object in every process that maps
            # them; anonymous ones (inode 0) only in forked children, at the same address.
            key = (dev, inode, offset, _span_size(span)) if inode != "0" else ("anon", span)
            fields = {}
            out.append((key, fields))
        elif fields is not None and line.endswith(" kB"):
            name, value = line.split(":", 1)
            fields[name] = int(value.split()[0])
    return out


def _span_size(span: str) -> int:
    start, end = span.split("-")
    return int(end, 16) - int(start, 16)


def measure(services: dict[str, list[int]]) -> dict:
    """Memory per service (MiB) and the stack total, shared mappings counted once."""
    result, stack_private, stack_shared = {}, 0, {}
    for name, pids in services.items():
        rss = pss = private = 0
        shared: dict[tuple, int] = {}
        for pid in pids:
            for key, f in smaps(pid):
                rss += f.get("Rss", 0)
                pss += f.get("Pss", 0)
                private += f.get("Private_Clean", 0) + f.get("Private_Dirty", 0)
                size = f.get("Shared_Clean", 0) + f.get("Shared_Dirty", 0)
                shared[key] = max(shared.get(key, 0), size)
        for key, size in shared.items():
            stack_shared[key] = max(stack_shared.get(key, 0), size)
        stack_private += private
        result[name] = {
            "processes": len(pids),
            "rss_mib": rss / 1024,
            "pss_mib": pss / 1024,
            "resident_mib": (private + sum(shared.values())) / 1024,
        }
    result["stack"] = {
        "processes": sum(r["processes"] for r in result.values()),
        "rss_mib": sum(r["rss_mib"] for r in result.values()),
        "pss_mib": sum(r["pss_mib"] for r in result.values()),
        "resident_mib": (stack_private + sum(stack_shared.values())) / 1024,
    }
    return result


def weed_env(overrides: dict) -> dict[str, str]:
    """The environment roles/object_store's unit gives weed for these role variables."""
    name = "object_store_seaweedfs_memory_limit_mb"
    limit = int(overrides.get(name, WEED_DEFAULTS[name]))
    return {"GOMEMLIMIT": f"{limit}MiB"} if limit > 0 else {}


class Stack:
    """One all-in-one stack on 127.0.0.1 for a profile of role variables."""

    def __init__(self, profile: str, overrides: dict, work: Path):
        self.profile, self.work = profile, work
        self.work.mkdir()
        self.pg, db = stack.start_postgres({k: v for k, v in overrides.items() if k.startswith("postgres_")})
        self.s3 = start_seaweedfs(
            work / "seaweedfs",
            volume_size_limit_mb=WEED_DEFAULTS["object_store_seaweedfs_volume_size_limit_mb"],
            volume_max=0,  # the role's unit: as many volumes as the disk holds
            extra_args=overrides.get("seaweedfs_args"),
            env=weed_env(overrides),
        )
        self.s3.client().create_bucket(Bucket="mlflow")
        env = stack.mlflow_env(
            db.uri(),
            "s3://mlflow/artifacts",
            {
                "MLFLOW_S3_ENDPOINT_URL": self.s3.endpoint_url,
                "AWS_DEFAULT_REGION": self.s3.region,
                "AWS_ACCESS_KEY_ID": self.s3.access_key,
                "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
            },
        )
        self.mlflow = stack.MlflowServer(f"mlflow-{profile}", [], env, work / "mlflow")  # flags: see main()
        self.nginx = None

    def start_front(self, site: str) -> None:
        """nginx with `site` in front of the (now healthy) mlflow server."""
        stack.write_htpasswd(self.work / "ours.htpasswd", {"bench": stack.BENCH_PASSWORD})
        self.nginx = stack.SiteNginx(site).start()
        self.endpoint = Endpoint(self.nginx.url, "bench", stack.BENCH_PASSWORD)

    def services(self) -> dict[str, list[int]]:
        return {
            "postgres": common.process_tree(stack.postgres_pid(self.pg)),
            "mlflow": self.mlflow.pids(),
            "nginx": common.process_tree(self.nginx.proc.pid),
            "seaweedfs": common.process_tree(self.s3.proc.pid),
        }

    def pg_connections(self) -> int:
        """Client backends of the mlflow role right now."""
        count = 0
        for pid in self.services()["postgres"]:
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"postgres: mlflow mlflow "):
                    count += 1
            except OSError:
                pass
        return count

    def stop(self) -> None:
        for step in (self.nginx, self.mlflow, self.s3, self.pg):
            if step is not None:
                step.stop()
        _remove_weed_sockets(self.s3.ports)


class Sampler(threading.Thread):
    """Samples one stack's memory every `interval` seconds until stopped."""

    def __init__(self, target: Stack, interval: float):
        super().__init__(daemon=True)
        self.target, self.interval = target, interval
        self.samples: list[dict] = []
        self.halt = threading.Event()

    def run_once(self) -> dict:
        return {"memory": measure(self.target.services()), "pg_connections": self.target.pg_connections()}

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append(self.run_once())
            self.halt.wait(self.interval)


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], rounds=3)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per burst")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    if args.tiny:
        args.rounds, args.duration, args.clients = 1, 1.5, 2
    artifact_bytes = (256 << 10) if args.tiny else (10 << 20)
    started, machine = time.monotonic(), common.machine()
    work = stack.tempdir("bench-footprint-")
    profiles = {name: PROFILES[name] for name in (TINY_PROFILES if args.tiny else PROFILES)}
    samples, load = [], {p: [] for p in profiles}
    with ExitStack() as es:
        es.callback(shutil.rmtree, work, ignore_errors=True)
        cert, key = stack.self_signed_pair(work)
        tls = {"nginx_proxy_tls_certificate": str(cert), "nginx_proxy_tls_certificate_key": str(key)}
        stacks: dict[str, Stack] = {}
        for profile, overrides in profiles.items():
            stacks[profile] = Stack(profile, overrides, work / profile)
            es.callback(stacks[profile].stop)
        items = []
        for profile, overrides in profiles.items():
            mlflow_vars = {k: v for k, v in overrides.items() if k.startswith("mlflow_server_")}
            items.append(stack.server_args_item(profile, mlflow_vars))
            site_vars = {
                "nginx_proxy_upstreams": [f"127.0.0.1:{stacks[profile].mlflow.port}"],
                "nginx_proxy_htpasswd_path": str(work / profile / "ours.htpasswd"),
            }
            items.append(stack.site_item(profile, tls | site_vars))
        common.log(NAME, "rendering the role templates with ansible")
        rendered = stack.render(work, items)
        for profile, target in stacks.items():
            target.mlflow.args = stack.with_port(rendered[f"args-{profile}"], target.mlflow.port)
        common.log(NAME, "starting the mlflow servers")
        for target in stacks.values():  # separate databases: their schemas are created in parallel
            target.mlflow.start()
        for target in stacks.values():
            target.mlflow.wait()
        fixtures = {}
        for profile, target in stacks.items():
            target.start_front(rendered[f"site-{profile}"])
            fixtures[profile] = prepare(target.endpoint, args.clients, artifact_bytes, profile)
        loadgen = LoadGenerator(args.clients)
        es.callback(loadgen.close)

        # Idle: after one round of every call (lazy imports done), once the stacks settle.
        time.sleep(0.5 if args.tiny else 5)
        for profile, target in stacks.items():
            samples.append({"profile": profile, "phase": "idle", "round": 0, **Sampler(target, 0).run_once()})
        for rnd in range(args.rounds):
            for profile in random.sample(list(stacks), len(stacks)):
                target = stacks[profile]
                sampler = Sampler(target, 0.5 if args.tiny else 1.0)
                sampler.start()
                out = loadgen.burst(target.endpoint, fixtures[profile], MIX, args.clients, args.duration)
                sampler.halt.set()
                sampler.join()
                for sample in sampler.samples:
                    samples.append({"profile": profile, "phase": "load", "round": rnd, **sample})
                load[profile].append(
                    {
                        "round": rnd,
                        "requests": len(out["latencies"]),
                        "errors": len(out["errors"]),
                        "first_error": out["errors"][0] if out["errors"] else None,
                        "rps": len(out["latencies"]) / out["wall_s"],
                    }
                )
            common.log(NAME, f"round {rnd + 1}/{args.rounds} done")
        settings = {
            "profiles": {
                profile: {
                    "role_vars": {k: v for k, v in overrides.items() if not k.startswith("seaweedfs_")},
                    "seaweedfs": {"env": weed_env(overrides), "args": overrides.get("seaweedfs_args", [])},
                    "mlflow_argv": " ".join(stacks[profile].mlflow.args),
                    "postgres": stack.postgres_settings(
                        {k: v for k, v in overrides.items() if k.startswith("postgres_")}
                    ),
                }
                for profile, overrides in profiles.items()
            },
            "clients": args.clients,
            "burst_seconds": args.duration,
            "rounds": args.rounds,
            "mix": list(MIX),
            "artifact_kib": artifact_bytes >> 10,
            "seaweedfs": "tests/support start_seaweedfs(): weed server -s3 (master, volume, filer, S3 in one "
            f"process), the role's volume size ({WEED_DEFAULTS['object_store_seaweedfs_volume_size_limit_mb']} MB) "
            "and -volume.max=0",
            "nginx_main_conf": "Debian's /etc/nginx/nginx.conf (worker_processes auto), TLS site",
        }
    summary = summarize(samples, list(profiles))
    peaks = {p: summary[p]["load_peak"]["stack"]["resident_mib"] for p in profiles}
    result = {
        "settings": settings,
        "summary": summary,
        "ratios": {
            f"{p}/default {phase}": summary[p][phase]["stack"]["resident_mib"]
            / summary["default"][phase]["stack"]["resident_mib"]
            for p in profiles
            if p != "default"
            for phase in ("idle", "load_peak")
        },
        "load": load,
        "targets": {
            "pi_under_load_mib": peaks["pi"],
            "limit_mib": TARGET_MIB,
            "met": peaks["pi"] <= TARGET_MIB,
            "peak_by_profile_mib": peaks,
        },
        "samples": samples,
    }
    common.write_result(NAME, args, started, machine, **result)
    print(json.dumps({"targets": result["targets"], "ratios": result["ratios"]}, indent=1))


def summarize(samples: list[dict], profiles: list[str]) -> dict:
    """Per profile: idle, and the load sample with the largest stack total; peak pg connections."""
    out = {}
    for profile in profiles:
        idle = [s for s in samples if s["profile"] == profile and s["phase"] == "idle"]
        loaded = [s for s in samples if s["profile"] == profile and s["phase"] == "load"]
        peak = max(loaded, key=lambda s: s["memory"]["stack"]["resident_mib"])
        per_service_peak = {
            name: max(s["memory"][name]["resident_mib"] for s in loaded) for name in peak["memory"] if name != "stack"
        }
        out[profile] = {
            "idle": idle[0]["memory"],
            "load_peak": peak["memory"],
            "load_median_stack_resident_mib": common.median(s["memory"]["stack"]["resident_mib"] for s in loaded),
            "per_service_peak_resident_mib": per_service_peak,
            "pg_connections_peak": max(s["pg_connections"] for s in loaded),
        }
    return out


if __name__ == "__main__":
    main()
