"""A real PostgreSQL (Debian's binaries) on 127.0.0.1 for tests.

`postgres_server` (session fixture) initdb's a cluster in a temp dir as the
`postgres` system user (PostgreSQL refuses root), with scram-sha-256 for TCP
clients, starts it on a free port and stops it at the end. Use
`server.create_database(name, owner, password)` and `server.uri(...)`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import find_free_port

BIN_DIR = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]) if glob.glob("/usr/lib/postgresql/*/bin") else None


class PostgresServer:
    def __init__(self):
        if BIN_DIR is None:
            raise RuntimeError("PostgreSQL server binaries are missing (run scripts/host-deps)")
        self.bin = BIN_DIR
        self.root = Path(tempfile.mkdtemp(prefix="pg-test-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.port = find_free_port()
        self.pg_user = pwd.getpwnam("postgres")

    def _as_postgres(self, *cmd: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *cmd], check=check, capture_output=True, text=True, **kwargs
        )

    def start(self) -> PostgresServer:
        os.chmod(self.root, 0o755)  # noqa: S103 - the postgres user must traverse it
        self.socket_dir.mkdir()
        self.data.mkdir(mode=0o700)
        for path in (self.root, self.socket_dir, self.data):
            os.chown(path, self.pg_user.pw_uid, self.pg_user.pw_gid)
        self._as_postgres(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
            "--username=postgres",
            "--encoding=UTF8",
            "--no-sync",
        )
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir} -c fsync=off"
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-l", str(self.root / "log"), "start"
        )
        return self

    def stop(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = self._as_postgres(
            str(self.bin / "psql"), "-h", str(self.socket_dir), "-p", str(self.port), "-d", database, "-tAc", sql
        )
        return out.stdout.strip()

    def create_database(self, name: str, owner: str, password: str) -> None:
        self.psql(f"CREATE ROLE \"{owner}\" LOGIN PASSWORD '{password}'")
        self.psql(f'CREATE DATABASE "{name}" OWNER "{owner}"')

    def uri(self, database: str, user: str, password: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}/{database}"

    @property
    def pg_dump(self) -> str:
        return str(self.bin / "pg_dump")

    @property
    def pg_restore(self) -> str:
        return str(self.bin / "pg_restore")


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer().start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.psql("select 1") == "1":
            break
        time.sleep(0.2)
    yield server
    server.stop()
