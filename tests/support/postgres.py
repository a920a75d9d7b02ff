"""A real PostgreSQL (Debian's server binaries) on 127.0.0.1 for tests.

Use the session fixture in a test module::

    from support.postgres import postgres_server  # noqa: F401 - fixture

    def test_something(postgres_server):
        db = postgres_server.create_database("mydb", "myowner", "s3cret")  # or new_database("prefix")
        engine_uri = db.uri                       # postgresql+psycopg2://myowner:s3cret@127.0.0.1:<port>/mydb
        postgres_server.psql("select 1", db.name) # as the superuser, over the unix socket

What it does: `initdb` a cluster in a fresh temp dir as the ``postgres`` system user
(PostgreSQL refuses to run as root), with ``peer`` auth on the unix socket (for
``psql`` as the superuser) and ``scram-sha-256`` for every TCP client, so a wrong
password really fails. The server listens on 127.0.0.1:<free port> only, with its
unix socket inside the temp dir; it is stopped and the dir removed at session end.

SQL goes to ``psql`` on stdin, so passwords never show on a command line.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import find_free_port


def _bin_dir() -> Path | None:
    """Newest /usr/lib/postgresql/<major>/bin with a server in it (Debian layout)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Database:
    """A database created on the test server, and how to reach it over TCP."""

    name: str
    owner: str
    password: str
    host: str
    port: int

    def uri(self, driver: str = "postgresql+psycopg2", password: str | None = None) -> str:
        """SQLAlchemy URI (user and password URL-encoded); `password` overrides the real one."""
        secret = self.password if password is None else password
        return f"{driver}://{quote(self.owner, safe='')}:{quote(secret, safe='')}@{self.host}:{self.port}/{self.name}"

    @property
    def libpq_env(self) -> dict[str, str]:
        """PG* variables for libpq clients (psql, pg_dump, pg_restore) as the owner."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.owner,
            "PGPASSWORD": self.password,
            "PGDATABASE": self.name,
        }


class PostgresServer:
    """One throwaway PostgreSQL cluster. Use through the `postgres_server` fixture."""

    host = "127.0.0.1"

    def __init__(self, bin_dir: Path | None = None, settings: dict[str, str] | None = None):
        bin_dir = bin_dir or _bin_dir()
        if bin_dir is None:
            raise RuntimeError(
                "PostgreSQL server binaries are missing (/usr/lib/postgresql/*/bin; run scripts/host-deps)"
            )
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="pg-test-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log = self.root / "postgres.log"
        self.port = find_free_port()
        self.os_user = pwd.getpwnam("postgres")
        # Extra server settings (`-c name=value`), applied after the test defaults below, so
        # they can also turn durability back on (e.g. the benches: fsync=on).
        self.settings = dict(settings or {})

    # -- running things as the postgres system user ------------------------------------
    def _as_postgres(self, *cmd: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        as_postgres = os.geteuid() == self.os_user.pw_uid
        argv = list(cmd) if as_postgres else ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed (rc={proc.returncode}): {proc.stderr.strip()}\n{self.log_tail()}")
        return proc

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, timeout: float = 90) -> PostgresServer:
        os.chmod(self.root, 0o755)  # noqa: S103 - the postgres user must traverse it
        self.socket_dir.mkdir(mode=0o700)
        self.data.mkdir(mode=0o700)
        for path in (self.root, self.socket_dir, self.data):
            os.chown(path, self.os_user.pw_uid, self.os_user.pw_gid)
        self._as_postgres(
            str(self.bin / "initdb"),
            f"--pgdata={self.data}",
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
            "--username=postgres",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses={self.host} -c port={self.port} -c unix_socket_directories={self.socket_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start"
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            proc = self._as_postgres(
                str(self.bin / "pg_isready"), "-h", str(self.socket_dir), "-p", str(self.port), check=False
            )
            if proc.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not become ready in {timeout}s\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- SQL and databases ---------------------------------------------------------------
    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run `sql` as the superuser (unix socket, fed on stdin); return unaligned, tuples-only output."""
        proc = self._as_postgres(
            str(self.bin / "psql"),
            "--no-psqlrc",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-d",
            database,
            "-tA",
            input=sql,
        )
        return proc.stdout.strip()

    def create_database(self, name: str, owner: str, password: str) -> Database:
        """Create a LOGIN role `owner` with `password` and a database `name` it owns."""
        self.psql(f"CREATE ROLE {quote_ident(owner)} LOGIN PASSWORD {quote_literal(password)};")
        self.psql(f"CREATE DATABASE {quote_ident(name)} OWNER {quote_ident(owner)};")
        return Database(name=name, owner=owner, password=password, host=self.host, port=self.port)

    def new_database(self, prefix: str = "db") -> Database:
        """A database with a unique name, its own owner and a random password."""
        suffix = secrets.token_hex(4)
        return self.create_database(f"{prefix}_{suffix}", f"{prefix}_owner_{suffix}", secrets.token_urlsafe(16))

    def uri(self, database: str, user: str, password: str, driver: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy URI for `database` as `user` over TCP (user and password URL-encoded)."""
        return Database(database, user, password, self.host, self.port).uri(driver)

    @property
    def pg_dump(self) -> str:
        return str(self.bin / "pg_dump")

    @property
    def pg_restore(self) -> str:
        return str(self.bin / "pg_restore")


@pytest.fixture(scope="session")
def postgres_server():
    """A running PostgreSQL for the whole session (see the module docstring)."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()
