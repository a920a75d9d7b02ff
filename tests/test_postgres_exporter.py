"""postgres's exporter: the role's own tasks create its least-privilege role in a real PostgreSQL
(tests/support/postgres.py), and Debian's prometheus-postgres-exporter, run as the prometheus
system user with the DATA_SOURCE_NAME and ARGS of the role's /etc/default file, reaches it over
the unix socket (peer authentication, no password) and reports ``pg_up 1`` on loopback.

The cluster is this module's own: its socket directory is opened to other users (Debian's
/var/run/postgresql is), which the shared session server's is not.
"""

from __future__ import annotations

import http.client
import json
import os
import pwd
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import find_free_port, play_results, run_playbook
from support.postgres import PostgresServer
from support.role_template import render_role_template, role_vars

pytestmark = pytest.mark.integration

EXPORTER = shutil.which("prometheus-postgres-exporter") or "/usr/bin/prometheus-postgres-exporter"
ROLE_TASKS = Path(__file__).resolve().parents[1] / "roles" / "postgres" / "tasks" / "exporter_role.yml"


@pytest.fixture(scope="module")
def cluster():
    server = PostgresServer()
    try:
        server.start()
        os.chmod(server.socket_dir, 0o755)  # noqa: S103 - like Debian's /var/run/postgresql
        # The test interpreter (a venv under /root) is out of the postgres user's reach: the role's
        # tasks run as root, and this cluster trusts the superuser on its socket instead.
        hba = server.data / "pg_hba.conf"
        hba.write_text("local all postgres trust\n" + hba.read_text())
        server._as_postgres(str(server.bin / "pg_ctl"), "-D", str(server.data), "reload")
        time.sleep(0.5)
        yield server
    finally:
        server.stop()


def _role_vars(cluster: PostgresServer) -> dict:
    return {"_postgres_socket_dir": str(cluster.socket_dir), "postgres_port": cluster.port}


def _create_role(tmp_path: Path, cluster: PostgresServer, check: bool = False) -> list[dict]:
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.include_tasks": str(ROLE_TASKS)}],
    }
    variables = {**role_vars("postgres"), **_role_vars(cluster), "ansible_become": False}
    proc = run_playbook([play], tmp_path, variables=variables, check=check)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return [r for r in play_results(json.loads(proc.stdout)["plays"][0]) if "include" not in r.get("action", "")]


def _default_file(tmp_path: Path, cluster: PostgresServer, listen: str) -> dict[str, str]:
    text = render_role_template(
        "postgres",
        "prometheus-postgres-exporter.default.j2",
        tmp_path / "prometheus-postgres-exporter",
        tmp_path,
        {**_role_vars(cluster), "postgres_exporter_listen": listen},
    )
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return {name: shlex.split(value)[0] for name, value in pairs}


def test_exporter_role_is_created_once_with_pg_monitor_only(tmp_path, cluster):
    checked = _create_role(tmp_path, cluster, check=True)
    assert any(result["changed"] for result in checked)
    assert cluster.psql("select count(*) from pg_roles where rolname = 'prometheus'") == "0"
    first = _create_role(tmp_path, cluster)
    assert first and any(result["changed"] for result in first)
    again = _create_role(tmp_path, cluster)
    assert not any(result["changed"] for result in again), again
    assert not any(result["changed"] for result in _create_role(tmp_path, cluster, check=True))
    attrs = cluster.psql(
        "select rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolpassword is null"
        " from pg_authid where rolname = 'prometheus'"
    )
    assert attrs == "t|f|f|f|f|t"
    groups = cluster.psql(
        "select string_agg(g.rolname, ',' order by g.rolname) from pg_auth_members m"
        " join pg_roles g on g.oid = m.roleid join pg_roles r on r.oid = m.member where r.rolname = 'prometheus'"
    )
    assert groups == "pg_monitor"


def test_debian_exporter_reports_pg_up_over_the_socket(tmp_path, cluster):
    if not Path(EXPORTER).exists():
        pytest.fail(f"{EXPORTER} missing: run scripts/host-deps")
    pwd.getpwnam("prometheus")  # the exporter package's system user
    _create_role(tmp_path, cluster)
    port = find_free_port()
    settings = _default_file(tmp_path, cluster, f"127.0.0.1:{port}")
    assert "password" not in settings["DATA_SOURCE_NAME"]
    env = {"PATH": os.environ["PATH"], "DATA_SOURCE_NAME": settings["DATA_SOURCE_NAME"]}
    argv = ["runuser", "-u", "prometheus", "--", EXPORTER, *settings["ARGS"].split()]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/")
    try:
        deadline, lines = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"exporter exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
                conn.request("GET", "/metrics")
                lines = conn.getresponse().read().decode().splitlines()
                conn.close()
                if "pg_up 1" in lines:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert "pg_up 1" in lines, "\n".join(line for line in lines if line.startswith("pg_"))[-2000:]
        assert any(line.startswith("pg_stat_database_xact_commit{") for line in lines)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _preflight(tmp_path: Path, listen: str) -> subprocess.CompletedProcess:
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.import_role": {"name": "mlops.mlflow.postgres", "tasks_from": "preflight"}}],
    }
    variables = {
        "postgres_db_password": "a-strong-db-password-01",
        "postgres_exporter_enabled": True,
        "postgres_exporter_listen": listen,
    }
    return run_playbook([play], tmp_path, variables=variables, check=True)


@pytest.mark.parametrize("listen", ["0.0.0.0:9187", ":9187", "[::]:9187"])
def test_preflight_refuses_all_interfaces(tmp_path, listen):
    proc = _preflight(tmp_path, listen)
    assert proc.returncode != 0
    assert "postgres_exporter_listen must be host:port" in proc.stdout


def test_preflight_accepts_the_default(tmp_path):
    proc = _preflight(tmp_path, "127.0.0.1:9187")
    assert proc.returncode == 0, proc.stdout[-3000:]
