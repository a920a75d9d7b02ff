"""Tracking API throughput and latency: our nginx front vs direct mlflow, MLflow's auth app, a guide setup.

Run: .venv/bin/python bench/tracking_throughput.py [--tiny] [--rounds N] [--duration S] [--cases ...]

Real processes on 127.0.0.1: one PostgreSQL (tests/support; the role's tuning, durability
on), mlflow servers from this venv with the flags roles/mlflow_server renders and local
artifacts, nginx serving the site roles/nginx_proxy renders inside Debian's nginx.conf. The
cases are in CASES below; the ones after d_guide change one default each, to test a
recommendation.

Rounds x concurrency (1, 4, 16 client processes) x call (log_batch of 100 metrics, get_run,
search_runs, 10 MB artifact upload and download) x case, the cases in a new random order
each time. Every figure is the median over rounds; every ratio is taken within a round.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import random
import shutil
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import _common as common
import _stack as stack
from _load import OPS, Endpoint, LoadGenerator, call, prepare

NAME = "tracking_throughput"
MAX_CONNECTIONS = 500
ARTIFACT_OPS = ("artifact_upload", "artifact_download")

# name: (description, mlflow server, nginx site or None for direct)
CASES = {
    "a": ("mlflow direct, no auth (the ceiling)", "ours", None),
    "b_http": ("our nginx site, sha512_crypt 5000 rounds, TLS off", "ours", "http"),
    "b_tls": ("our nginx site, sha512_crypt 5000 rounds, TLS on (shipped default)", "ours", "tls"),
    "c_ttl0": ("MLflow basic-auth app direct, auth_cache_ttl_seconds=0 (its default)", "auth0", None),
    "c_ttl60": ("MLflow basic-auth app direct, auth_cache_ttl_seconds=60", "auth60", None),
    "d_guide": ("guide: bare proxy_pass site, htpasswd -B -C 10 user, mlflow default flags", "guide", "guide"),
    "a_w1": ("a with mlflow_server_workers: 1", "ours_w1", None),
    "b_tls_w1": ("the Pi profile: b_tls with 1 mlflow worker and upstream keepalive 16", "ours_w1", "tls_keepalive"),
    "b_tls_r1000": ("b_tls with nginx_proxy_hash_rounds: 1000", "ours", "tls_r1000"),
    "b_tls_keepalive": ("b_tls with nginx_proxy_upstream_keepalive: 16 (2 workers)", "ours", "tls_keepalive"),
    "b_tls_buf16k": ("b_tls with nginx's own stream buffers (16k up, 4k down)", "ours", "tls_buf16k"),
    "b_tls_buf64k": ("b_tls with nginx_proxy_stream_buffer_size: 64k", "ours", "tls_buf64k"),
    "b_tls_buf1m": ("b_tls with nginx_proxy_stream_buffer_size: 1m", "ours", "tls_buf1m"),
}
TINY_CASES = ("a", "b_tls", "c_ttl0", "d_guide")
RATIOS = [("b_tls", "a"), ("b_http", "a"), ("b_tls", "c_ttl0"), ("b_tls", "c_ttl60"), ("b_tls", "d_guide")]
RATIOS += [("b_http", "d_guide"), ("a_w1", "a"), ("b_tls_w1", "a"), ("b_tls_w1", "a_w1"), ("b_tls_w1", "b_tls")]
RATIOS += [("b_tls_r1000", "b_tls"), ("b_tls_keepalive", "a"), ("b_tls_keepalive", "b_tls")]
RATIOS += [("b_tls", "b_tls_buf16k"), ("b_tls_buf64k", "b_tls_buf16k"), ("b_tls_buf1m", "b_tls_buf16k")]

# mlflow servers: role variables for the rendered flags, or literal argv (the guide).
SERVERS = {
    "ours": {"role_vars": {}},
    "ours_w1": {"role_vars": {"mlflow_server_workers": 1}},
    "auth0": {"role_vars": {}, "auth_ttl": 0},
    "auth60": {"role_vars": {}, "auth_ttl": 60},
    "guide": {"argv": ["server", "--host", "127.0.0.1"]},
}
# nginx sites: role variables and htpasswd rounds (None = the module's default).
SITES = {
    "http": {"role_vars": {"nginx_proxy_tls_enabled": False}},
    "tls": {"role_vars": {}},
    "tls_r1000": {"role_vars": {}, "rounds": 1000},
    "tls_keepalive": {"role_vars": {"nginx_proxy_upstream_keepalive": 16}},
    "tls_buf64k": {"role_vars": {"nginx_proxy_stream_buffer_size": "64k"}},
    "tls_buf1m": {"role_vars": {"nginx_proxy_stream_buffer_size": "1m"}},
    # nginx's defaults on x86-64: client_body_buffer_size 16k, proxy_buffer_size 4k (one page)
    "tls_buf16k": {"role_vars": {"nginx_proxy_stream_buffer_size": "16k"}, "proxy_buffer_size": "4k"},
}
# What the guides show: one location, proxy_pass, auth_basic; a bigger body limit so 10 MB fits.
GUIDE_SITE = """\
server {{
    listen 80;
    server_name localhost;
    client_max_body_size 100m;
    location / {{
        auth_basic "MLflow";
        auth_basic_user_file {htpasswd};
        proxy_pass http://127.0.0.1:{port};
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }}
}}
"""


def crypt_ms(hashed: str, password: str, repeat: int) -> float:
    """Median time of one crypt(3) verify of `hashed`: what an nginx worker spends per request."""
    lib = ctypes.CDLL(ctypes.util.find_library("crypt"))
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.crypt.restype = ctypes.c_char_p
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        assert lib.crypt(password.encode(), hashed.encode()) == hashed.encode()
        samples.append((time.perf_counter() - t0) * 1000)
    return common.median(samples)


def health_ms(url: str, keepalive: bool, repeat: int = 25) -> float:
    """Median latency of GET /health on one keep-alive connection, or a new connection each time."""
    endpoint, samples = Endpoint(url), []
    conn = endpoint.connect()
    call(conn, endpoint, "GET", "/health")
    for _ in range(repeat):
        if not keepalive:
            conn.close()
            conn = endpoint.connect()
        t0 = time.perf_counter()
        call(conn, endpoint, "GET", "/health")
        samples.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return common.median(samples)


def hash_of(path: Path) -> str:
    return path.read_text().splitlines()[0].split(":", 1)[1]


def with_workers(argv: list[str], workers: int) -> list[str]:
    argv = list(argv)
    if "--workers" in argv:
        argv[argv.index("--workers") + 1] = str(workers)
        return argv
    return [*argv, "--workers", str(workers)]


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = stack.tempdir("bench-tracking-")
        names = args.cases or (TINY_CASES if args.tiny else list(CASES))
        self.case_names = [name for name in CASES if name in names]
        self.cases: dict[str, dict] = {}
        self.rows: list[dict] = []
        self.hash_verify_ms: dict[str, float] = {}
        self.health_probe: dict[str, dict] = {}
        self.argv: dict[str, list[str]] = {}
        self.sites: dict[str, str] = {}

    @property
    def clients(self) -> tuple[int, ...]:
        return (2,) if self.args.tiny else (1, 4, 16)

    @property
    def artifact_bytes(self) -> int:
        return (256 << 10) if self.args.tiny else (10 << 20)

    # ------------------------------------------------------------------ set-up
    def start(self, es: ExitStack) -> None:
        work = self.work
        # Up to ten mlflow servers share this cluster, each worker with its own pools.
        pg, db = stack.start_postgres({"postgres_max_connections": MAX_CONNECTIONS})
        es.callback(pg.stop)
        pg_group = ("postgres", stack.postgres_pid(pg))
        server_names = list(dict.fromkeys(CASES[name][1] for name in self.case_names))
        site_keys = list(dict.fromkeys((CASES[n][2], CASES[n][1]) for n in self.case_names if CASES[n][2]))
        servers = {name: self._server(name, db.uri()) for name in server_names}

        cert, key = stack.self_signed_pair(work)
        tls = {"nginx_proxy_tls_certificate": str(cert), "nginx_proxy_tls_certificate_key": str(key)}
        items = [stack.server_args_item(n, SERVERS[n]["role_vars"]) for n in server_names if "role_vars" in SERVERS[n]]
        for site, server in site_keys:
            if site == "guide":
                continue
            upstream = {"nginx_proxy_upstreams": [f"127.0.0.1:{servers[server].port}"]}
            htpasswd = {"nginx_proxy_htpasswd_path": str(work / f"{site}.htpasswd")}
            items.append(stack.site_item(f"{site}@{server}", tls | upstream | htpasswd | SITES[site]["role_vars"]))
        common.log(NAME, "rendering the role templates with ansible")
        rendered = stack.render(work, items)

        for name, server in servers.items():
            argv = rendered[f"args-{name}"] if "role_vars" in SERVERS[name] else SERVERS[name]["argv"]
            if "auth_ttl" in SERVERS[name]:
                argv = [*argv, "--app-name", "basic-auth"]
            server.args = stack.with_port(with_workers(argv, 1) if self.args.tiny else argv, server.port)
            self.argv[name] = server.args
            es.callback(server.stop)
        common.log(NAME, f"starting mlflow servers {server_names} (the first one creates the schema)")
        first, *rest = servers.values()
        first.start().wait()
        for server in rest:
            server.start()
        for server in rest:
            server.wait()

        for site, server in site_keys:
            self.sites[f"{site}@{server}"] = self._site(site, rendered.get(f"site-{site}@{server}"), servers[server])
        nginx = {}
        for key, text in self.sites.items():
            nginx[key] = stack.SiteNginx(text)
            es.callback(nginx[key].stop)
            nginx[key].start()

        for name, server in servers.items():
            if "auth_ttl" in SERVERS[name]:
                admin = Endpoint(server.url, "admin", stack.ADMIN_PASSWORD)
                conn = admin.connect()
                user = {"username": "bench", "password": stack.BENCH_PASSWORD}
                call(conn, admin, "POST", "/api/2.0/mlflow/users/create", user)
                conn.close()

        for name in self.case_names:
            _, server_name, site = CASES[name]
            server = servers[server_name]
            groups = [("mlflow", server.proc.pid), pg_group]
            authed = site is not None or "auth_ttl" in SERVERS[server_name]
            url = server.url
            if site is not None:
                front = nginx[f"{site}@{server_name}"]
                groups.insert(0, ("nginx", front.proc.pid))
                url = front.url
            endpoint = Endpoint(url, "bench", stack.BENCH_PASSWORD) if authed else Endpoint(url)
            self.cases[name] = {"endpoint": endpoint, "groups": groups}
        common.log(NAME, f"preparing an experiment per case: {self.case_names}")
        for name, case in self.cases.items():
            case["fixture"] = prepare(case["endpoint"], max(self.clients), self.artifact_bytes, name)

        # Isolates the transport from mlflow's work: /health does nothing.
        for name, server in servers.items():
            workers = server.args[server.args.index("--workers") + 1] if "--workers" in server.args else "4"
            self.health_probe[f"{name} ({workers} workers)"] = {
                "keepalive_ms": health_ms(server.url, keepalive=True),
                "new_connection_ms": health_ms(server.url, keepalive=False),
            }
        for path in sorted(work.glob("*.htpasswd")):
            scheme = hash_of(path).split("$")[1]
            self.hash_verify_ms[f"{path.stem} ({'bcrypt' if scheme.startswith('2') else 'sha512_crypt'})"] = crypt_ms(
                hash_of(path), stack.BENCH_PASSWORD, 5 if scheme.startswith("2") else 20
            )

    def _server(self, name: str, db_uri: str) -> stack.MlflowServer:
        env = stack.mlflow_env(db_uri, str(self.work / "artifacts"))
        if "auth_ttl" in SERVERS[name]:
            env |= {
                "MLFLOW_AUTH_CONFIG_PATH": str(stack.auth_app_config(self.work, SERVERS[name]["auth_ttl"])),
                "MLFLOW_AUTH_ADMIN_PASSWORD": stack.ADMIN_PASSWORD,
                "MLFLOW_FLASK_SERVER_SECRET_KEY": "bench-flask-secret-key-0001",
            }
        return stack.MlflowServer(name, [], env, self.work / f"srv-{name}")

    def _site(self, site: str, rendered: str | None, server: stack.MlflowServer) -> str:
        """The site text for nginx, and the htpasswd file it reads."""
        htpasswd = self.work / f"{site}.htpasswd"
        if site == "guide":
            subprocess.run(
                ["htpasswd", "-i", "-c", "-B", "-C", "10", str(htpasswd), "bench"],
                input=stack.BENCH_PASSWORD, text=True, check=True, capture_output=True,
            )  # fmt: skip
            stack.write_secret(htpasswd, htpasswd.read_text(), group=stack.www_data_gid())
            return GUIDE_SITE.format(htpasswd=htpasswd, port=server.port)
        stack.write_htpasswd(htpasswd, {"bench": stack.BENCH_PASSWORD}, rounds=SITES[site].get("rounds"))
        if "proxy_buffer_size" in SITES[site]:  # one variable sets both; nginx's defaults differ
            size, down = SITES[site]["role_vars"]["nginx_proxy_stream_buffer_size"], SITES[site]["proxy_buffer_size"]
            rendered = rendered.replace(f"proxy_buffer_size {size};", f"proxy_buffer_size {down};")
        return rendered

    # ------------------------------------------------------------------ measuring
    def run(self, loadgen: LoadGenerator) -> None:
        for rnd in range(self.args.rounds):
            for clients in self.clients:
                for op in OPS:
                    order = list(self.cases)
                    random.shuffle(order)
                    for name in order:
                        self.rows.append(self.burst(loadgen, rnd, name, op, clients))
            common.log(NAME, f"round {rnd + 1}/{self.args.rounds} done")

    def burst(self, loadgen: LoadGenerator, rnd: int, name: str, op: str, clients: int) -> dict:
        case = self.cases[name]
        duration = self.args.duration * (2 if op in ARTIFACT_OPS else 1)

        def sample():
            return {label: common.cpu_seconds(common.process_tree(pid)) for label, pid in case["groups"]}

        out = loadgen.burst(case["endpoint"], case["fixture"], (op,), clients, duration, sample)
        latencies = [lat for _, lat in out["latencies"]]
        n = len(latencies)
        before, after = out["sample_before"], out["sample_after"]
        cpu = {label: (after[label] - before[label]) * 1000 / max(n, 1) for label in before}
        cpu["client"] = out["client_cpu_s"] * 1000 / max(n, 1)
        return {
            "round": rnd,
            "case": name,
            "op": op,
            "clients": clients,
            "requests": n,
            "errors": len(out["errors"]),
            "first_error": out["errors"][0] if out["errors"] else None,
            "wall_s": round(out["wall_s"], 3),
            "rps": n / out["wall_s"] if n else 0.0,
            "p50_ms": common.percentile(latencies, 50) * 1000,
            "p99_ms": common.percentile(latencies, 99) * 1000,
            "cpu_ms_per_request": {label: round(v, 3) for label, v in cpu.items()},
        }

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict:
        table: dict = {}
        for name in self.cases:
            for op in OPS:
                for clients in self.clients:
                    rows = self._rows(name, op, clients)
                    labels = rows[0]["cpu_ms_per_request"] if rows else {}
                    table.setdefault(name, {}).setdefault(op, {})[str(clients)] = {
                        "rps": common.median(r["rps"] for r in rows),
                        "p50_ms": common.median(r["p50_ms"] for r in rows),
                        "p99_ms": common.median(r["p99_ms"] for r in rows),
                        "errors": sum(r["errors"] for r in rows),
                        "cpu_ms_per_request": {
                            k: common.median(r["cpu_ms_per_request"][k] for r in rows) for k in labels
                        },
                    }
        ratios, overhead = {}, {}
        for num, den in RATIOS:
            if num not in self.cases or den not in self.cases:
                continue
            for op in OPS:
                for clients in self.clients:
                    pairs = [
                        (self._row(num, op, clients, r), self._row(den, op, clients, r))
                        for r in range(self.args.rounds)
                    ]
                    pairs = [(x, y) for x, y in pairs if x and y and y["rps"] > 0]
                    key = str(clients)
                    ratios.setdefault(f"{num}/{den}", {}).setdefault(op, {})[key] = common.median(
                        x["rps"] / y["rps"] for x, y in pairs
                    )
                    overhead.setdefault(f"{num}-{den}", {}).setdefault(op, {})[key] = common.median(
                        x["p99_ms"] - y["p99_ms"] for x, y in pairs
                    )
        return {"table": table, "ratios": ratios, "p99_overhead_ms": overhead}

    def targets(self, summary: dict) -> dict:
        """The issue's targets for log_batch at the highest concurrency: b/a >= 0.90, p99(b) - p99(a) <= 5 ms."""
        top, out = str(max(self.clients)), {}
        for num, den in [("b_tls", "a"), ("b_http", "a"), ("b_tls_w1", "a_w1"), ("b_tls_keepalive", "a")]:
            ratio = summary["ratios"].get(f"{num}/{den}", {}).get("log_batch", {}).get(top)
            over = summary["p99_overhead_ms"].get(f"{num}-{den}", {}).get("log_batch", {}).get(top)
            if ratio is None:
                continue
            out[f"{num}/{den}"] = {
                "clients": int(top),
                "rps_ratio": ratio,
                "rps_ratio_met": ratio >= 0.90,
                "p99_overhead_ms": over,
                "p99_overhead_met": over <= 5.0,
            }
        return out

    def _rows(self, name, op, clients):
        return [r for r in self.rows if r["case"] == name and r["op"] == op and r["clients"] == clients]

    def _row(self, name, op, clients, rnd):
        found = [r for r in self._rows(name, op, clients) if r["round"] == rnd]
        return found[0] if found else None


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], rounds=4)
    parser.add_argument("--duration", type=float, default=2.5, help="seconds per burst (artifact bursts: twice that)")
    parser.add_argument("--cases", nargs="*", choices=list(CASES), help="only these cases (default: all)")
    args = parser.parse_args()
    if args.tiny:
        args.rounds, args.duration = 1, 0.3
    bench = Bench(args)
    started, machine = time.monotonic(), common.machine()
    with ExitStack() as es:
        es.callback(shutil.rmtree, bench.work, ignore_errors=True)
        bench.start(es)
        loadgen = LoadGenerator(max(bench.clients))
        es.callback(loadgen.close)
        common.log(NAME, "measuring")
        bench.run(loadgen)
    summary = bench.summary()
    settings = {
        "rounds": args.rounds,
        "burst_seconds": args.duration,
        "artifact_burst_seconds": args.duration * 2,
        "clients": list(bench.clients),
        "client_kind": "one process per client, one keep-alive connection each, http.client",
        "ops": {
            "log_batch": "POST /api/2.0/mlflow/runs/log-batch, 100 metrics, each client its own run",
            "get_run": "GET /api/2.0/mlflow/runs/get",
            "search_runs": "POST /api/2.0/mlflow/runs/search, max_results 100, one experiment with a run per client",
            "artifact_upload": f"PUT {bench.artifact_bytes >> 10} KiB to /api/2.0/mlflow-artifacts/artifacts/...",
            "artifact_download": f"GET {bench.artifact_bytes >> 10} KiB from /api/2.0/mlflow-artifacts/artifacts/...",
        },
        "cases": {name: CASES[name][0] for name in bench.case_names},
        "mlflow_argv": {name: " ".join(argv) for name, argv in bench.argv.items()},
        "tiny_note": "--tiny runs every server with --workers 1" if args.tiny else None,
        "postgres": stack.postgres_settings({"postgres_max_connections": MAX_CONNECTIONS}),
        "nginx_main_conf": "Debian's /etc/nginx/nginx.conf (worker_processes auto, access_log on), paths moved",
        "sites": bench.sites,
    }
    result = {
        "settings": settings,
        "hash_verify_ms": bench.hash_verify_ms,
        "health_probe": bench.health_probe,
        "summary": summary,
        "targets": bench.targets(summary),
        "rows": bench.rows,
    }
    common.write_result(NAME, args, started, machine, **result)
    print(json.dumps(result["targets"], indent=1))


if __name__ == "__main__":
    main()
