"""Multi-GB artifact transfers: through our nginx site vs direct to mlflow vs direct to S3.

Run: .venv/bin/python bench/artifact_throughput.py [--tiny] [--rounds N] [--sizes 1g 5g] [--cases ...]

Real processes on 127.0.0.1: PostgreSQL (tests/support, the role's tuning), SeaweedFS
(`weed server -s3`, the object_store role's volume size) with an `mlflow` bucket, one mlflow
server with the flags roles/mlflow_server renders (--serve-artifacts, artifacts in
s3://mlflow/artifacts) and nginx serving the site roles/nginx_proxy renders (TLS on, basic
auth) inside Debian's nginx.conf.

Every transfer runs in a fresh client process: the real mlflow client
(MlflowClient().log_artifact, mlflow.artifacts.download_artifacts) with MLFLOW_TRACKING_URI
on nginx or on the mlflow port, and boto3 (upload_file/download_file, its default transfer
config) on SeaweedFS for the S3 baseline. Per round and size: the uploads in a new random
order, then the downloads in a new random order; each download is checked by sha256. Figures
are MiB/s (size over the transfer's wall time in the client), medians over rounds; ratios are
taken within a round, then the median.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import _common as common
import _stack as stack
from support.s3_servers import _remove_weed_sockets, start_seaweedfs

NAME = "artifact_throughput"
MIB = 1 << 20
SIZES = {"8m": 8 * MIB, "64m": 64 * MIB, "1g": 1024 * MIB, "5g": 5120 * MIB}
DIRECTIONS = ("upload", "download")
BUCKET = "mlflow"
WEED_DEFAULTS = common.role_defaults("object_store")

# name: (description, how the client reaches the artifacts, nginx site or None)
CASES = {
    "nginx": ("mlflow client through our nginx site (TLS, basic auth) -> mlflow -> S3", "mlflow", "tls"),
    "nginx_http": ("mlflow client through our nginx site with TLS off", "mlflow", "http"),
    "mlflow": ("mlflow client direct to the mlflow port (http), streamed through mlflow -> S3", "mlflow", None),
    "mlflow_presigned": (
        "mlflow client direct to the mlflow port, taking its presigned multipart offer (client <-> S3)",
        "mlflow",
        None,
    ),
    "s3": ("boto3 direct to SeaweedFS S3 (upload_file/download_file defaults)", "s3", None),
    "nginx_buffered": (
        "nginx with TLS, downloads read ahead into memory (proxy_buffering on, proxy_buffers 16 256k, no temp file)",
        "mlflow",
        "tls_buffered",
    ),
}
DEFAULT_CASES = ("nginx", "nginx_http", "mlflow", "s3")
# Direct to mlflow 3.x with an S3 store, the client takes the server's presigned multipart offer
# (server-info) and moves the bytes to and from S3 itself; our site hides that offer. These
# client settings make the direct case move the bytes the way the nginx cases do.
STREAMED = {"MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false", "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false"}
# nginx sites: role variables over the defaults.
SITES = {
    "tls": {},
    "http": {"nginx_proxy_tls_enabled": False},
    "tls_buffered": {},
}
# Text edits of a rendered site: a proposed directive change before it is a role variable.
SITE_EDITS = {
    "tls_buffered": [
        ("proxy_buffering off;", "proxy_buffering on;\n    proxy_max_temp_file_size 0;"),
        ("proxy_buffers 4 256k;", "proxy_buffers 16 256k;"),
    ],
}
RATIOS = [("nginx", "mlflow"), ("nginx_http", "mlflow"), ("nginx", "nginx_http"), ("nginx", "mlflow_presigned")]
RATIOS += [("mlflow", "s3"), ("nginx", "s3"), ("nginx_buffered", "mlflow"), ("nginx_buffered", "nginx")]
TARGET_RATIO = 0.90


# --------------------------------------------------------------------------- the client process


def client_main(spec: dict) -> None:
    """One transfer in this (fresh) process; prints {"seconds", "cpu_s"} as JSON."""
    if spec["kind"] == "s3":
        import boto3
        from botocore.config import Config

        s3 = boto3.client(
            "s3",
            endpoint_url=spec["endpoint_url"],
            region_name=spec["region"],
            aws_access_key_id=spec["access_key"],
            aws_secret_access_key=spec["secret_key"],
            config=Config(s3={"addressing_style": "path"}),
        )
        cpu0, t0 = time.process_time(), time.perf_counter()
        if spec["op"] == "upload":
            s3.upload_file(spec["file"], BUCKET, spec["key"])
        else:
            s3.download_file(BUCKET, spec["key"], str(Path(spec["dst"]) / Path(spec["key"]).name))
    else:
        import mlflow
        from mlflow import MlflowClient

        cpu0, t0 = time.process_time(), time.perf_counter()
        if spec["op"] == "upload":
            MlflowClient().log_artifact(spec["run_id"], spec["file"], artifact_path="blobs")
        else:
            mlflow.artifacts.download_artifacts(
                run_id=spec["run_id"], artifact_path=f"blobs/{Path(spec['file']).name}", dst_path=spec["dst"]
            )
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(json.dumps({"seconds": seconds, "cpu_s": cpu}))


# --------------------------------------------------------------------------- helpers


def make_file(path: Path, size: int, block: bytes) -> str:
    """`size` bytes of `block` (random, written once and reused) plus a unique head; returns its sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        head = os.urandom(4096)
        f.write(head)
        digest.update(head)
        left = size - len(head)
        while left > 0:
            chunk = block[: min(left, len(block))]
            f.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def size_label(size: int) -> str:
    return f"{size // 1024 // MIB} GiB" if size >= 1024 * MIB and size % (1024 * MIB) == 0 else f"{size // MIB} MiB"


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = stack.tempdir("bench-artifacts-")
        self.case_names = [name for name in CASES if name in args.cases]
        self.sizes = {label: SIZES[label] for label in args.sizes}
        self.rows: list[dict] = []
        self.sites: dict[str, str] = {}
        self.argv: list[str] = []
        self.groups: dict[str, int] = {}
        self.cases: dict[str, dict] = {}

    # ------------------------------------------------------------------ set-up
    def start(self, es: ExitStack) -> None:
        work = self.work
        pg, db = stack.start_postgres()
        es.callback(pg.stop)
        common.log(NAME, "starting SeaweedFS")
        self.s3 = start_seaweedfs(
            work / "seaweedfs",
            volume_size_limit_mb=WEED_DEFAULTS["object_store_seaweedfs_volume_size_limit_mb"],
            volume_max=0,  # the role's unit: as many volumes as the disk holds
        )
        ports = self.s3.ports
        es.callback(_remove_weed_sockets, ports)
        es.callback(self.s3.stop)
        self.s3.client().create_bucket(Bucket=BUCKET)
        s3_env = {
            "MLFLOW_S3_ENDPOINT_URL": self.s3.endpoint_url,
            "AWS_DEFAULT_REGION": self.s3.region,
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
        }
        server = stack.MlflowServer("mlflow", [], stack.mlflow_env(db.uri(), f"s3://{BUCKET}/artifacts", s3_env), work)

        cert, key = stack.self_signed_pair(work)
        self.cert = cert
        sites = list(dict.fromkeys(CASES[n][2] for n in self.case_names if CASES[n][2]))
        common_vars = {
            "nginx_proxy_tls_certificate": str(cert),
            "nginx_proxy_tls_certificate_key": str(key),
            "nginx_proxy_upstreams": [f"127.0.0.1:{server.port}"],
            "nginx_proxy_htpasswd_path": str(work / "bench.htpasswd"),
        }
        items = [stack.server_args_item("mlflow", {"mlflow_server_s3_endpoint_url": self.s3.endpoint_url})]
        items += [stack.site_item(site, common_vars | SITES[site]) for site in sites]
        common.log(NAME, "rendering the role templates with ansible")
        rendered = stack.render(work, items)
        argv = rendered["args-mlflow"]
        if self.args.tiny and "--workers" in argv:
            argv[argv.index("--workers") + 1] = "1"
        server.args = stack.with_port(argv, server.port)
        self.argv = server.args
        es.callback(server.stop)
        common.log(NAME, "starting the mlflow server")
        server.start().wait()
        self.server = server

        stack.write_htpasswd(work / "bench.htpasswd", {"bench": stack.BENCH_PASSWORD})
        nginx = {}
        for site in sites:
            text = rendered[f"site-{site}"]
            for old, new in SITE_EDITS.get(site, []):
                assert old in text, f"{site}: {old!r} is not in the rendered site"
                text = text.replace(old, new)
            self.sites[site] = text
            nginx[site] = stack.SiteNginx(self.sites[site])
            es.callback(nginx[site].stop)
            nginx[site].start()

        self.groups = {"mlflow": server.proc.pid, "seaweedfs": self.s3.proc.pid}
        self.groups |= {f"nginx_{site}": front.proc.pid for site, front in nginx.items()}
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
        for name in self.case_names:
            _, kind, site = CASES[name]
            env = dict(base_env)
            if kind == "mlflow":
                url = nginx[site].url if site else server.url
                env["MLFLOW_TRACKING_URI"] = url
                env["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(self.args.client_timeout)
                if name == "mlflow":
                    env |= STREAMED
                if site:
                    env |= {"MLFLOW_TRACKING_USERNAME": "bench", "MLFLOW_TRACKING_PASSWORD": stack.BENCH_PASSWORD}
                if site and nginx[site].tls:
                    env["MLFLOW_TRACKING_SERVER_CERT_PATH"] = str(cert)
            self.cases[name] = {"env": env, "kind": kind, "site": site}

        import mlflow  # the parent creates the runs, direct to the server
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(server.url)
        self.client = MlflowClient()
        self.experiment_id = self.client.create_experiment("artifact-throughput")

        self.files: dict[str, tuple[Path, str]] = {}
        block = os.urandom(64 * MIB)
        for label, size in self.sizes.items():
            path = work / f"blob-{label}.bin"
            common.log(NAME, f"writing {path.name} ({size_label(size)})")
            self.files[label] = (path, make_file(path, size, block))

    # ------------------------------------------------------------------ measuring
    def cpu(self) -> dict[str, float]:
        return {label: common.cpu_seconds(common.process_tree(pid)) for label, pid in self.groups.items()}

    def transfer(self, spec: dict, env: dict) -> dict:
        before, t0 = self.cpu(), time.monotonic()
        proc = subprocess.run(
            [sys.executable, __file__, "_client", json.dumps(spec)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=3600,
        )
        after = self.cpu()
        out = {"process_s": round(time.monotonic() - t0, 2), "server_cpu_s": {}}
        out["server_cpu_s"] = {k: round(after[k] - before[k], 2) for k in before}
        if proc.returncode != 0:
            out["error"] = (proc.stderr or proc.stdout)[-1500:]
            return out
        return out | json.loads(proc.stdout.strip().splitlines()[-1])

    def run(self) -> None:
        for rnd in range(self.args.rounds):
            for label in self.sizes:
                if rnd >= self.args.rounds_5g and label == "5g":
                    continue
                self.one_size(rnd, label)
            common.log(NAME, f"round {rnd + 1}/{self.args.rounds} done")

    def one_size(self, rnd: int, label: str) -> None:
        path, digest = self.files[label]
        size = path.stat().st_size
        specs = {}
        for name, case in self.cases.items():
            if case["kind"] == "s3":
                specs[name] = {
                    "kind": "s3",
                    "endpoint_url": self.s3.endpoint_url,
                    "region": self.s3.region,
                    "access_key": self.s3.access_key,
                    "secret_key": self.s3.secret_key,
                    "key": f"direct/{rnd}/{name}/{path.name}",
                    "file": str(path),
                }
            else:
                run = self.client.create_run(self.experiment_id, run_name=f"{name}-{label}-{rnd}")
                specs[name] = {"kind": "mlflow", "run_id": run.info.run_id, "file": str(path)}
        uploaded = set()
        for op in DIRECTIONS:
            order = list(self.cases)
            random.shuffle(order)
            for name in order:
                if op == "download" and name not in uploaded:
                    continue
                dst = self.work / f"dl-{name}"
                dst.mkdir(exist_ok=True)
                spec = specs[name] | {"op": op, "dst": str(dst)}
                common.log(NAME, f"round {rnd + 1} {label} {op} {name}")
                out = self.transfer(spec, self.cases[name]["env"])
                row = {"round": rnd, "size": label, "bytes": size, "op": op, "case": name} | out
                if "error" not in out:
                    row["mib_s"] = size / MIB / out["seconds"]
                    if op == "upload":
                        uploaded.add(name)
                    else:
                        got = list(dst.rglob(path.name))  # mlflow keeps the artifact's directories
                        row["sha256_ok"] = len(got) == 1 and sha256_of(got[0]) == digest
                shutil.rmtree(dst, ignore_errors=True)
                if "error" in out:
                    common.log(NAME, f"  failed: {out['error'][-300:]}")
                else:
                    common.log(NAME, f"  {row['mib_s']:.1f} MiB/s")
                self.rows.append(row)
        self.free_space()

    def free_space(self) -> None:
        """Delete every object, then have SeaweedFS reclaim the space (vacuum)."""
        s3 = self.s3.client()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for item in page.get("Contents", []):
                s3.delete_object(Bucket=BUCKET, Key=item["Key"])
        url = f"http://127.0.0.1:{self.s3.ports['master']}/vol/vacuum?garbageThreshold=0.0001"
        try:
            with urllib.request.urlopen(url, timeout=600):
                pass
        except OSError as exc:
            common.log(NAME, f"vacuum failed: {exc}")

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict:
        table: dict = {}
        for label in self.sizes:
            for op in DIRECTIONS:
                for name in self.cases:
                    rows = self._rows(label, op, name)
                    ok = [r for r in rows if "mib_s" in r]
                    table.setdefault(label, {}).setdefault(op, {})[name] = {
                        "mib_s": common.median(r["mib_s"] for r in ok),
                        "seconds": common.median(r["seconds"] for r in ok),
                        "client_cpu_s": common.median(r["cpu_s"] for r in ok),
                        "server_cpu_s": {k: common.median(r["server_cpu_s"][k] for r in ok) for k in self.groups},
                        "transfers": len(ok),
                        "errors": len(rows) - len(ok),
                        "sha256_ok": all(r.get("sha256_ok", True) for r in ok),
                    }
        ratios: dict = {}
        for num, den in RATIOS:
            if num not in self.cases or den not in self.cases:
                continue
            for label in self.sizes:
                for op in DIRECTIONS:
                    pairs = []
                    for rnd in range(self.args.rounds):
                        x, y = self._row(label, op, num, rnd), self._row(label, op, den, rnd)
                        if x and y and "mib_s" in x and "mib_s" in y:
                            pairs.append(x["mib_s"] / y["mib_s"])
                    ratios.setdefault(f"{num}/{den}", {}).setdefault(label, {})[op] = common.median(pairs)
        return {"table": table, "ratios": ratios}

    def _rows(self, label, op, name):
        return [r for r in self.rows if r["size"] == label and r["op"] == op and r["case"] == name]

    def _row(self, label, op, name, rnd):
        found = [r for r in self._rows(label, op, name) if r["round"] == rnd]
        return found[0] if found else None


def compute_targets(summary: dict, sizes: list[str]) -> dict:
    """Through nginx >= 0.90x direct to mlflow per size and direction; the biggest size round-trips intact."""
    out = {}
    for label in sizes:
        for op in DIRECTIONS:
            ratio = summary["ratios"].get("nginx/mlflow", {}).get(label, {}).get(op)
            if ratio is not None:
                out[f"nginx/mlflow {label} {op}"] = {"ratio": ratio, "met": ratio == ratio and ratio >= TARGET_RATIO}
    biggest = max(sizes, key=lambda label: SIZES[label])
    cells = [summary["table"].get(biggest, {}).get(op, {}).get("nginx") for op in DIRECTIONS]
    ok = all(c and c["transfers"] > 0 and c["errors"] == 0 and c["sha256_ok"] for c in cells)
    out[f"round trip {biggest} through nginx"] = {"size": biggest, "met": ok}
    return out


# --------------------------------------------------------------------------- report.py hooks


def _fmt(value, digits: int = 1) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def report_section(data: dict) -> list[str]:
    """Markdown lines for docs/benchmarks.md: the MiB/s table, the ratios, the settings."""
    s = data["settings"]
    summary = data["summary"]
    cases = list(s["cases"])
    out = [
        "## Artifact transfers (multi-GB)",
        "",
        "`bench/artifact_throughput.py`: PostgreSQL, SeaweedFS, one mlflow server (`--serve-artifacts`, "
        "artifacts in S3) and our nginx site on 127.0.0.1. Every transfer is a fresh client process: the "
        "mlflow client through nginx or direct to the mlflow port, boto3 direct to SeaweedFS. Uploads, then "
        "downloads, each in a new random order per round; every download is checked by sha256. MiB/s = size "
        "/ the client's transfer time; medians over rounds, ratios within a round.",
        "",
        f"Machine: {data['machine']['cpu']}, {data['machine']['cpus']} CPUs, {data['machine']['ram_gib']} GiB; "
        f"mlflow {data['versions']['mlflow']}, nginx {data['versions']['nginx']}, "
        f"SeaweedFS {data['versions']['seaweedfs']}; rounds {s['rounds']} (5 GiB: {s['rounds_5g']}); "
        f"finished {data['finished']}.",
        "",
        "| size | direction | " + " | ".join(cases) + " | " + " | ".join(f"{a}/{b}" for a, b in s["ratios"]) + " |",
        "|" + "---|" * (2 + len(cases) + len(s["ratios"])),
    ]
    for label, by_op in summary["table"].items():
        for op, cells in by_op.items():
            row = [size_label(SIZES[label]), op]
            for name in cases:
                cell = cells.get(name, {})
                text = _fmt(cell.get("mib_s")) + " MiB/s"
                if cell.get("errors"):
                    text += f" ({cell['errors']} failed)"
                row.append(text)
            for a, b in s["ratios"]:
                row.append(_fmt(summary["ratios"].get(f"{a}/{b}", {}).get(label, {}).get(op), 2))
            out.append("| " + " | ".join(row) + " |")
    out += ["", "Server CPU seconds per transfer (median): " + "; ".join(
        f"{label} {op} {name}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in cell["server_cpu_s"].items())
        for label, by_op in summary["table"].items()
        for op, cells in by_op.items()
        for name, cell in cells.items()
        if name.startswith("nginx") or name == "mlflow"
    ), ""]  # fmt: skip
    return out


def targets(data: dict) -> list[tuple[str, str, bool]]:
    """(target, measured, met) rows for the report's Targets table."""
    rows = []
    for key, t in data["targets"].items():
        if "ratio" in t:
            rows.append((f"artifacts: {key} >= {TARGET_RATIO:.2f}", _fmt(t["ratio"], 2), bool(t["met"])))
        else:
            rows.append((f"artifacts: {key} (sha256 verified)", "ok" if t["met"] else "failed", bool(t["met"])))
    return rows


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], rounds=2)
    parser.add_argument("--sizes", nargs="*", choices=list(SIZES), default=["1g", "5g"])
    parser.add_argument("--rounds-5g", type=int, default=1, help="rounds that include 5g (default 1: the first)")
    parser.add_argument("--cases", nargs="*", choices=list(CASES), default=list(DEFAULT_CASES))
    parser.add_argument(
        "--client-timeout",
        type=int,
        default=900,
        help="MLFLOW_HTTP_REQUEST_TIMEOUT for the mlflow client (its default 120 s is shorter than the server's "
        "S3 leg of a 5 GiB upload at about 40 MiB/s)",
    )
    args = parser.parse_args()
    if args.tiny:
        args.rounds, args.sizes, args.cases = 1, ["8m"], ["nginx", "mlflow", "s3"]
    bench = Bench(args)
    started, machine = time.monotonic(), common.machine()
    with ExitStack() as es:
        es.callback(shutil.rmtree, bench.work, ignore_errors=True)
        bench.start(es)
        common.log(NAME, "measuring")
        bench.run()
    summary = bench.summary()
    settings = {
        "rounds": args.rounds,
        "rounds_5g": min(args.rounds_5g, args.rounds),
        "sizes": {label: SIZES[label] for label in args.sizes},
        "cases": {name: CASES[name][0] for name in bench.case_names},
        "ratios": [[a, b] for a, b in RATIOS if a in bench.cases and b in bench.cases],
        "client": "a fresh python process per transfer; mlflow MlflowClient().log_artifact / "
        "mlflow.artifacts.download_artifacts, or boto3 upload_file/download_file; MLFLOW_* client settings default",
        "client_env": {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(args.client_timeout)} | {"mlflow case": STREAMED},
        "mlflow_argv": " ".join(bench.argv),
        "nginx_main_conf": "Debian's /etc/nginx/nginx.conf (worker_processes auto, access_log on), paths moved",
        "sites": bench.sites,
    }
    result = {
        "settings": settings,
        "summary": summary,
        "targets": compute_targets(summary, args.sizes),
        "rows": bench.rows,
    }
    common.write_result(NAME, args, started, machine, **result)
    print(json.dumps(result["targets"], indent=1))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_client":
        client_main(json.loads(sys.argv[2]))
    else:
        main()
