"""The services the benches run on 127.0.0.1: PostgreSQL, SeaweedFS, mlflow servers and nginx.

PostgreSQL and SeaweedFS come from the test helpers in tests/support; the mlflow server runs
from this venv with the flags our role renders (roles/mlflow_server/templates/_server_args.j2)
and the environment its env file sets; nginx serves the site our role renders
(roles/nginx_proxy/templates/mlflow-site.conf.j2) inside Debian's own /etc/nginx/nginx.conf.
"""

from __future__ import annotations

import grp
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import VENV_BIN, find_free_port, process_tree, render_role_templates, role_defaults
from support.mlflow_auth_server import write_auth_config
from support.nginx import NginxServer
from support.postgres import PostgresServer

BENCH_PASSWORD = "bench-password-0001"  # the one user of every auth case
ADMIN_PASSWORD = "bench-admin-password-0001"  # MLflow basic-auth app admin
POSTGRES_TUNING = ("max_connections", "shared_buffers", "work_mem", "maintenance_work_mem", "effective_cache_size")


# --------------------------------------------------------------------------- PostgreSQL


def postgres_settings(overrides: dict | None = None) -> dict[str, str]:
    """What roles/postgres writes into its conf.d file (defaults + overrides), durability on.

    The test helper turns fsync off for speed; a deployed server keeps PostgreSQL's defaults.
    """
    values = role_defaults("postgres") | (overrides or {})
    settings = {name: str(values[f"postgres_{name}"]) for name in POSTGRES_TUNING}
    return settings | {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


def start_postgres(overrides: dict | None = None):
    """A fresh cluster with the role's tuning and an `mlflow` database; returns (server, database)."""
    server = PostgresServer(settings=postgres_settings(overrides)).start()
    database = server.create_database("mlflow", "mlflow", "bench-db-password-0001")
    return server, database


def postgres_pid(server: PostgresServer) -> int:
    return int((server.data / "postmaster.pid").read_text().split()[0])


# --------------------------------------------------------------------------- role templates


def server_args_item(name: str, overrides: dict) -> dict:
    """A render_role_templates item: the `mlflow ...` arguments the role's unit runs."""
    return {"key": f"args-{name}", "role": "mlflow_server", "template": "_server_args.j2", "vars": overrides}


def site_item(name: str, overrides: dict) -> dict:
    """A render_role_templates item: our nginx site (ports are placeholders, see SiteNginx)."""
    ports = {"nginx_proxy_http_port": 80, "nginx_proxy_https_port": 443}
    return {"key": f"site-{name}", "role": "nginx_proxy", "template": "mlflow-site.conf.j2", "vars": ports | overrides}


def render(workdir: Path, items: list[dict]) -> dict[str, str | list[str]]:
    """Render every item in one Ansible run; server arguments come back as argv lists."""
    rendered = render_role_templates(items, workdir / "rendered")
    return {key: shlex.split(text) if key.startswith("args-") else text for key, text in rendered.items()}


def self_signed_pair(workdir: Path) -> tuple[Path, Path]:
    """An ECC P-384 key and self-signed certificate for 127.0.0.1, like the role generates."""
    cert, key = workdir / "mlflow.crt", workdir / "mlflow.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    key.chmod(0o600)
    return cert, key


# --------------------------------------------------------------------------- nginx


def debian_main_conf(prefix: Path, site: Path) -> str:
    """Debian's /etc/nginx/nginx.conf with its paths moved into `prefix` and `site` as the only site.

    Everything else (worker_processes auto, worker_connections, sendfile, access_log, gzip,
    ssl_* defaults) stays as the package ships it, because that is what our role runs under.
    """
    text = Path("/etc/nginx/nginx.conf").read_text()
    text = re.sub(r"^\s*pid\s+[^;]+;", f"pid {prefix}/nginx.pid;", text, flags=re.M)
    text = re.sub(r"^(\s*)error_log\s+[^;]+;", rf"\1error_log {prefix}/error.log;", text, flags=re.M)
    text = re.sub(r"^(\s*)access_log\s+[^;]+;", rf"\1access_log {prefix}/access.log;", text, flags=re.M)
    text = re.sub(r"^\s*include /etc/nginx/(conf\.d|sites-enabled)/\*[^;]*;\n", "", text, flags=re.M)
    temp_paths = "".join(
        f"\t{kind}_temp_path {prefix}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return re.sub(r"^http \{\n", lambda m: f"http {{\n{temp_paths}\tinclude {site};\n", text, count=1, flags=re.M)


class SiteNginx(NginxServer):
    """nginx serving one whole site file, the way the role installs it.

    The only edit to the rendered site: its `listen` lines are pinned to 127.0.0.1 on free
    ports (the main server on self.port, the TLS redirect server on another port), and the
    IPv6 twins are dropped. Workers run as www-data, as on a host (see write_htpasswd).
    """

    def __init__(self, site_text: str):
        super().__init__("")
        self.prefix.chmod(0o755)
        self.site_text = site_text
        self.redirect_port = 0
        self.tls = bool(re.search(r"^\s*listen\s+\S+\s+ssl", site_text, re.M))

    def render_conf(self) -> str:
        self.redirect_port = find_free_port()
        site = re.sub(r"^\s*listen\s+\[::\]:.*\n", "", self.site_text, flags=re.M)
        main_port = 443 if self.tls else 80

        def pin(match: re.Match) -> str:
            port = self.port if int(match.group(2)) == main_port else self.redirect_port
            return f"{match.group(1)}127.0.0.1:{port}"

        site = re.sub(r"^(\s*listen\s+)(\d+)", pin, site, flags=re.M)
        modules = self.prefix / "modules"  # modules-enabled/ loads modules/*.so relative to the prefix
        if not modules.exists():
            modules.symlink_to("/usr/share/nginx/modules")
        site_path = self.prefix / "site.conf"
        site_path.write_text(site)
        return debian_main_conf(self.prefix, site_path)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def master_pid(self) -> int:
        return self.proc.pid


def write_htpasswd(path: Path, users: dict[str, str], scheme: str = "sha512_crypt", rounds: int | None = None) -> None:
    """An htpasswd file made by our module's own code (module_utils/htpasswd_file), root:www-data 0640."""
    from ansible_collections.mlops.mlflow.plugins.module_utils import htpasswd_file

    text = None
    for name, password in users.items():
        text = htpasswd_file.ensure(text, name, "present", password, scheme=scheme, rounds=rounds).text
    write_secret(path, text, group=www_data_gid())


def www_data_gid() -> int:
    return grp.getgrnam("www-data").gr_gid


def write_secret(path: Path, text: str, group: int = 0, mode: int = 0o640) -> None:
    path.write_text(text)
    os.chown(path, 0, group)
    path.chmod(mode)


# --------------------------------------------------------------------------- mlflow


class MlflowServer:
    """`mlflow <args>` from the venv in its own process group, with the env file's variables."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], workdir: Path):
        self.name = name
        self.port = find_free_port()
        self.args = with_port(args, self.port)
        self.env = env
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.log = workdir / f"{name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MlflowServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))} | self.env
        env["HOME"] = str(self.workdir)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "mlflow"), *self.args],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait(self, timeout: float = 240) -> MlflowServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        tail = self.log.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"mlflow server {self.name} did not become healthy:\n{tail}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc else []


def with_port(args: list[str], port: int) -> list[str]:
    args = list(args)
    if "--port" in args:
        args[args.index("--port") + 1] = str(port)
    else:
        args += ["--port", str(port)]
    return args


def mlflow_env(database_uri: str, artifacts: str, extra: dict | None = None) -> dict[str, str]:
    """The variables roles/mlflow_server/templates/mlflow-server.env.j2 sets."""
    return {
        "MLFLOW_BACKEND_STORE_URI": database_uri,
        "MLFLOW_ARTIFACTS_DESTINATION": artifacts,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    } | (extra or {})


def auth_app_config(workdir: Path, ttl: int) -> Path:
    """An auth config with its own user store and TTL (mlflow's default authorization function)."""
    return write_auth_config(workdir / f"basic_auth_ttl{ttl}.ini", workdir / f"basic_auth_ttl{ttl}.db", ttl)


def tempdir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path
