"""The postgres role's settings and database step against a real PostgreSQL, with non-default values.

The role's real postgresql.conf.j2 is rendered with the role's defaults and vars plus tuning
overrides, included into a throwaway cluster (tests/support/postgres.py) and the server restarted:
the running server must report the overridden values. The role's database.yml then runs through
ansible-playbook on localhost with a non-default database and owner name, against that cluster:
its unix socket is also in /var/run/postgresql, where the role's tasks look for it. The tasks'
become (to the postgres user) is turned off, as the test interpreter lives where that user
cannot run it; the cluster trusts the postgres login on its socket instead of peer auth.
"""

from __future__ import annotations

import os
import shutil
import time

import psycopg2
import pytest
from conftest import REPO_ROOT, run_playbook
from support.postgres import PostgresServer
from support.role_template import render_role_template, role_vars

ROLE_SOCKET_DIR = "/var/run/postgresql"  # where roles/postgres/tasks/database.yml connects
TUNING = {
    "postgres_max_connections": 37,
    "postgres_maintenance_work_mem": "48MB",
    "postgres_effective_cache_size": "384MB",
}
DB_NAME, DB_USER, DB_PASSWORD = "tracking_store", "tracker", "settings-db-secret-0123"


@pytest.fixture(scope="module")
def server():
    if not os.path.isdir(ROLE_SOCKET_DIR):
        pytest.fail(f"{ROLE_SOCKET_DIR} is missing (the postgresql package creates it; run scripts/host-deps)")
    pg = PostgresServer()
    pg.settings["unix_socket_directories"] = f"{pg.socket_dir},{ROLE_SOCKET_DIR}"
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()


def _show(server, setting: str) -> str:
    return server.psql(f"SHOW {setting};")


def test_tuning_settings_reach_the_running_server(server, tmp_path):
    before = {name: _show(server, name) for name in ("max_connections", "maintenance_work_mem", "effective_cache_size")}
    assert before == {"max_connections": "100", "maintenance_work_mem": "64MB", "effective_cache_size": "4GB"}
    rendered = tmp_path / "90-mlops-mlflow.conf"
    text = render_role_template(
        "postgres", "postgresql.conf.j2", rendered, tmp_path, {**TUNING, "postgres_port": server.port}
    )
    assert "max_connections = 37" in text
    conf = server.data / "90-mlops-mlflow.conf"
    shutil.copy(rendered, conf)
    os.chown(conf, server.os_user.pw_uid, server.os_user.pw_gid)
    with open(server.data / "postgresql.conf", "a") as main_conf:
        main_conf.write(f"include '{conf}'\n")
    # The command line (port, sockets) still wins over the file, as pg_ctl restart reuses it; -l keeps
    # the server off the captured stdout.
    server._as_postgres(
        str(server.bin / "pg_ctl"), "-D", str(server.data), "-m", "fast", "-l", str(server.log), "-w", "restart"
    )
    server.wait_ready()
    assert _show(server, "max_connections") == "37"
    assert _show(server, "maintenance_work_mem") == "48MB"
    assert _show(server, "effective_cache_size") == "384MB"


def test_database_step_creates_the_named_database_and_owner(server, tmp_path):
    hba = server.data / "pg_hba.conf"
    hba.write_text("local all postgres trust\n" + hba.read_text())
    server._as_postgres(str(server.bin / "pg_ctl"), "-D", str(server.data), "reload")
    time.sleep(0.5)
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Run the postgres database tasks",
                "ansible.builtin.include_tasks": str(REPO_ROOT / "roles/postgres/tasks/database.yml"),
            }
        ],
    }
    variables = {
        **role_vars("postgres"),
        "postgres_port": server.port,
        "postgres_db_name": DB_NAME,
        "postgres_db_user": DB_USER,
        "postgres_db_password": DB_PASSWORD,
        # The test interpreter (a venv under /root) is out of the postgres user's reach: the
        # tasks run as root, and the throwaway cluster trusts local socket connections instead.
        "ansible_become": False,
    }
    proc = run_playbook([play], tmp_path, variables=variables)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]

    assert server.psql(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{DB_NAME}';") == DB_USER
    assert server.psql("SELECT count(*) FROM pg_database WHERE datname = 'mlflow';") == "0"
    flags = server.psql(f"SELECT rolcanlogin, rolsuper, rolcreatedb FROM pg_roles WHERE rolname = '{DB_USER}';")
    assert flags == "t|f|f"
    # The owner logs in over TCP with its password, to its database.
    conn = psycopg2.connect(host=server.host, port=server.port, dbname=DB_NAME, user=DB_USER, password=DB_PASSWORD)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT current_database(), current_user")
            assert cursor.fetchone() == (DB_NAME, DB_USER)
    finally:
        conn.close()
