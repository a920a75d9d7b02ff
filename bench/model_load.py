"""Time of mlflow.pyfunc.load_model("runs:/<id>/model") through the stack vs a plain mlflow server.

Run: .venv/bin/python bench/model_load.py [--tiny] [--rounds N] [--no-plugin-timeout S]

The stack: PostgreSQL (tests/support, the role's tuning), SeaweedFS (`weed server -s3`), the
mlflow server with the flags roles/mlflow_server renders, its artifacts in SeaweedFS and the S3
404 plugin the role installs (roles/mlflow_server/files/s3_404_fix, on the server's PYTHONPATH),
and nginx with our TLS site and basic auth in front. The baseline: a plain `mlflow server` with
a SQLite store and local artifacts, reached directly. Each logs one tiny MLflow 3 pyfunc model;
each round then loads it once from each (new random order every round), every load in a fresh
client process (mlflow imported before the clock starts), downloads proxied by the server
(MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD=false: a client of our stack cannot reach SeaweedFS, so
it must not follow presigned S3 URLs). Target: stack <= 2x baseline.

Once, after the rounds: the same load from a second server on the stack's database and bucket
without the plugin (direct, no nginx), capped by --no-plugin-timeout: the cost of the 500s the
client retries with growing waits (mlflow#24535). The servers' access logs give the 500 counts.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack

import _common as common
import _stack as stack
from support.s3_404_fix import (
    LOAD_MODEL_PROGRAM,
    LOG_MODEL_PROGRAM,
    PROXIED_CLIENT_ENV,
    plugin_on_path,
    s3_server_env,
    status_count,
)
from support.s3_servers import _remove_weed_sockets, start_seaweedfs

NAME = "model_load"
TARGET_RATIO = 2.0
WEED_DEFAULTS = common.role_defaults("object_store")
CASES = ("stack", "baseline")


def client(program: str, *args: str, env: dict[str, str], timeout: float) -> dict:
    """Run a client program in a fresh process; its JSON answer plus the process's wall time."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))} | PROXIED_CLIENT_ENV
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", program, *args],
            capture_output=True,
            text=True,
            env=base | env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"timed_out": True, "wall_s": round(time.monotonic() - start, 1)}
    if proc.returncode != 0:
        raise RuntimeError(f"client failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]) | {"wall_s": round(time.monotonic() - start, 2)}


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], rounds=5)
    parser.add_argument(
        "--no-plugin-timeout", type=float, default=420.0, help="cap (s) of the one load without the plugin"
    )
    args = parser.parse_args()
    if args.tiny:
        args.rounds, args.no_plugin_timeout = 1, 10.0
    started, machine = time.monotonic(), common.machine()
    work = stack.tempdir("bench-model-load-")
    loads: list[dict] = []
    with ExitStack() as es:
        es.callback(shutil.rmtree, work, ignore_errors=True)
        pg, db = stack.start_postgres()
        es.callback(pg.stop)
        s3 = start_seaweedfs(
            work / "seaweedfs",
            volume_size_limit_mb=WEED_DEFAULTS["object_store_seaweedfs_volume_size_limit_mb"],
            volume_max=0,
        )
        es.callback(_remove_weed_sockets, s3.ports)
        es.callback(s3.stop)
        s3.client().create_bucket(Bucket="mlflow")
        s3_env = s3_server_env(s3.endpoint_url, s3.access_key, s3.secret_key, s3.region)
        env = stack.mlflow_env(db.uri(), "s3://mlflow/artifacts", s3_env)
        site = plugin_on_path(work / "plugin-site")
        servers = {
            "stack": stack.MlflowServer("mlflow-stack", [], env | {"PYTHONPATH": str(site)}, work / "stack"),
            "no_plugin": stack.MlflowServer("mlflow-no-plugin", [], env, work / "no-plugin"),
        }
        cert, key = stack.self_signed_pair(work)
        htpasswd = work / "ours.htpasswd"
        site_vars = {
            "nginx_proxy_tls_certificate": str(cert),
            "nginx_proxy_tls_certificate_key": str(key),
            "nginx_proxy_upstreams": [f"127.0.0.1:{servers['stack'].port}"],
            "nginx_proxy_htpasswd_path": str(htpasswd),
        }
        common.log(NAME, "rendering the role templates with ansible")
        rendered = stack.render(work, [stack.server_args_item("stack", {}), stack.site_item("stack", site_vars)])
        for server in servers.values():
            server.args = stack.with_port(rendered["args-stack"], server.port)
        baseline_home = work / "baseline"
        baseline_home.mkdir()
        servers["baseline"] = stack.MlflowServer(
            "mlflow-baseline",
            [
                *("server", "--host", "127.0.0.1"),
                *("--backend-store-uri", f"sqlite:///{baseline_home / 'mlflow.db'}"),
                *("--artifacts-destination", str(baseline_home / "artifacts")),
            ],
            {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # as on the stack: no job runner beside it
            baseline_home,
        )
        for server in servers.values():
            es.callback(server.stop)
        common.log(NAME, "starting the mlflow servers")
        servers["baseline"].start()
        servers["stack"].start().wait()  # creates the schema the second server then finds
        servers["no_plugin"].start()
        servers["baseline"].wait()
        servers["no_plugin"].wait()
        stack.write_htpasswd(htpasswd, {"bench": stack.BENCH_PASSWORD})
        nginx = stack.SiteNginx(rendered["site-stack"]).start()
        es.callback(nginx.stop)

        endpoints = {
            "stack": (
                nginx.url,
                {
                    "MLFLOW_TRACKING_USERNAME": "bench",
                    "MLFLOW_TRACKING_PASSWORD": stack.BENCH_PASSWORD,
                    "MLFLOW_TRACKING_SERVER_CERT_PATH": str(cert),
                },
            ),
            "baseline": (servers["baseline"].url, {}),
            "no_plugin": (servers["no_plugin"].url, {}),
        }
        common.log(NAME, "logging one model on the stack and one on the baseline")
        run_ids = {case: client(LOG_MODEL_PROGRAM, endpoints[case][0], env=endpoints[case][1], timeout=600)["run_id"]
                   for case in CASES}  # fmt: skip
        run_ids["no_plugin"] = run_ids["stack"]  # same database and bucket
        logs_before = {name: server.log.read_text(errors="replace") for name, server in servers.items()}

        for rnd in range(args.rounds):
            for case in random.sample(CASES, len(CASES)):
                url, client_env = endpoints[case]
                out = client(LOAD_MODEL_PROGRAM, url, run_ids[case], env=client_env, timeout=600)
                assert out["prediction"] == [1, 2], out
                loads.append({"case": case, "round": rnd, "seconds": out["seconds"], "process_s": out["wall_s"]})
            common.log(NAME, f"round {rnd + 1}/{args.rounds}: " + ", ".join(
                f"{row['case']} {row['seconds']:.2f} s" for row in loads if row["round"] == rnd))  # fmt: skip
        statuses = {}
        for name in CASES:
            during = servers[name].log.read_text(errors="replace")[len(logs_before[name]) :]
            statuses[name] = {str(code): status_count(during, code) for code in (200, 404, 500)}

        common.log(NAME, f"one load without the plugin (capped at {args.no_plugin_timeout:.0f} s)")
        url, client_env = endpoints["no_plugin"]
        out = client(LOAD_MODEL_PROGRAM, url, run_ids["no_plugin"], env=client_env, timeout=args.no_plugin_timeout)
        during = servers["no_plugin"].log.read_text(errors="replace")[len(logs_before["no_plugin"]) :]
        no_plugin = {
            "seconds": out.get("seconds"),
            "timed_out": bool(out.get("timed_out")),
            "process_s": out["wall_s"],
            "cap_s": args.no_plugin_timeout,
            "statuses": {str(code): status_count(during, code) for code in (200, 404, 500)},
        }
        settings = {
            "rounds": args.rounds,
            "stack": "PostgreSQL + SeaweedFS (s3://mlflow/artifacts) + mlflow (role-rendered flags, S3 404 plugin on "
            "PYTHONPATH) + nginx (our TLS site, basic auth)",
            "baseline": "mlflow server --backend-store-uri sqlite --artifacts-destination <local dir>, direct",
            "no_plugin": "the stack's mlflow flags, database and bucket without the plugin, direct (no nginx)",
            "mlflow_argv": " ".join(servers["stack"].args),
            "model": "pyfunc PythonModel returning its input, logged with mlflow.pyfunc.log_model(name='model')",
            "load": "mlflow.pyfunc.load_model('runs:/<id>/model') in a fresh process, timed after import",
            "client_env": PROXIED_CLIENT_ENV,
        }
    summary = summarize(loads, statuses, no_plugin)
    result = {"settings": settings, "summary": summary, "targets": summary.pop("targets"), "loads": loads}
    common.write_result(NAME, args, started, machine, **result)
    print(json.dumps({"summary": result["summary"], "targets": result["targets"]}, indent=1))


def summarize(loads: list[dict], statuses: dict, no_plugin: dict) -> dict:
    medians = {case: common.median(row["seconds"] for row in loads if row["case"] == case) for case in CASES}
    ratio = medians["stack"] / medians["baseline"]
    return {
        "median_s": medians,
        "max_s": {case: max(row["seconds"] for row in loads if row["case"] == case) for case in CASES},
        "ratio": ratio,
        "statuses": statuses,
        "no_plugin": no_plugin,
        "targets": {
            "ratio": ratio,
            "ratio_max": TARGET_RATIO,
            "ratio_met": ratio <= TARGET_RATIO,
            "stack_500s": statuses["stack"]["500"],
            "no_500s_met": statuses["stack"]["500"] == 0,
        },
    }


# --------------------------------------------------------------------------- report (bench/report.py)


def _no_plugin_text(no_plugin: dict) -> str:
    if no_plugin["timed_out"]:
        return f"> {no_plugin['cap_s']:.0f} s (stopped at the cap)"
    return f"{no_plugin['seconds']:.1f} s"


def report_section(data: dict) -> list[str]:
    """Markdown lines for docs/benchmarks.md."""
    s = data["summary"]
    med, worst = s["median_s"], s["max_s"]
    np_ = s["no_plugin"]
    return [
        'Time of `mlflow.pyfunc.load_model("runs:/<id>/model")` for a tiny MLflow 3 pyfunc model, each load in a',
        "fresh client process (timed after `import mlflow`), "
        f"{data['settings']['rounds']} interleaved rounds. Stack: {data['settings']['stack']}. "
        f"Baseline: {data['settings']['baseline']}.",
        "",
        "| Server | median s | max s | 200s | 404s | 500s |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {case} | {med[case]:.2f} | {worst[case]:.2f} | {s['statuses'][case]['200']} | "
            f"{s['statuses'][case]['404']} | {s['statuses'][case]['500']} |"
            for case in CASES
        ),
        f"| stack without the S3 404 plugin (one load) | {_no_plugin_text(np_)} | | {np_['statuses']['200']} | "
        f"{np_['statuses']['404']} | {np_['statuses']['500']} |",
        "",
        f"Stack / baseline: {s['ratio']:.2f}x. Without the plugin the server answers each missing file with 500 "
        "(mlflow#24535) and the client retries it with growing waits before it falls back to the logged model.",
    ]


def targets(data: dict) -> list[tuple[str, str, bool]]:
    """(target, measured, met) rows for the report's Targets table."""
    t = data["targets"]
    return [
        (f"Model load through the stack <= {t['ratio_max']:.0f}x a plain mlflow server", f"{t['ratio']:.2f}x",
         t["ratio_met"]),
        ("Model load through the stack: no 500 answers (no client retries)", str(t["stack_500s"]), t["no_500s_met"]),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
