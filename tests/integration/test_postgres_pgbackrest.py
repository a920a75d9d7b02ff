"""postgres role, pgBackRest: WAL archiving, base backups and point-in-time restore, for real.

A throwaway PostgreSQL cluster (tests/support/postgres.py) runs with the archive settings the
role's conf.d drop-in renders; the repository is a bucket on a real SeaweedFS S3 endpoint behind
a TLS front (pgBackRest speaks S3 over HTTPS only). The role's own steps run on localhost:
tasks/pgbackrest_repository.yml (package, probe, config) and tasks/pgbackrest.yml (stanza,
archive check, scripts), pointed at the test cluster by the role's internal path variables.

- Wrong keys, a missing bucket or an unreachable endpoint fail the probe with a message naming
  the variable to fix, and no configuration is written.
- Check mode reports the changes and writes nothing; apply makes them; a second apply changes
  nothing.
- The role's backup script takes a full backup and stamps its success; the freshness check
  reads the repository; a backup that cannot reach the server exits non-zero and stamps nothing.
- Rows are written, a time recorded, rows deleted "by mistake", more rows written: a restore to
  the latest finds the last rows (and not the deleted ones), a restore to the recorded time finds
  the deleted rows back (and not the later ones).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import changed_tasks, failure_messages, run_playbook, task_results
from support.postgres import PostgresServer
from support.role_template import render_role_template
from support.s3_servers import seaweedfs_s3  # noqa: F401 - fixture
from support.tls_proxy import TlsProxy

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("pgbackrest") is None, reason="pgbackrest is not installed (apt install pgbackrest)"
    ),
]

BUCKET = "pg-backups"
CIPHER_PASS = "Kq7-pgbackrest-cipher-pass-for-tests-0042"
STEPS = [
    {"ansible.builtin.import_role": {"name": "mlops.mlflow.postgres", "tasks_from": "pgbackrest_repository"}},
    {"ansible.builtin.import_role": {"name": "mlops.mlflow.postgres", "tasks_from": "pgbackrest"}},
]


class Setup:
    """The S3 endpoint, the cluster and the role variables that point the steps at them."""

    def __init__(self, s3, proxy: TlsProxy, root: Path, server: PostgresServer):
        self.s3, self.proxy, self.root, self.server = s3, proxy, root, server
        self.conf = root / "pgbackrest.conf"
        self.backup_script = root / "pgbackrest-backup"
        self.restore_script = root / "pgbackrest-restore"
        self.check_script = root / "pgbackrest-freshness"
        self.stamps = root / "stamps"

    def variables(self, **overrides) -> dict:
        return {
            "postgres_pgbackrest_enabled": True,
            "postgres_pgbackrest_s3_endpoint": "127.0.0.1",
            "postgres_pgbackrest_s3_port": self.proxy.port,
            "postgres_pgbackrest_s3_bucket": BUCKET,
            "postgres_pgbackrest_s3_uri_style": "path",
            "postgres_pgbackrest_s3_ca_file": str(self.proxy.ca_file),
            "postgres_pgbackrest_s3_key": self.s3.access_key,
            "postgres_pgbackrest_s3_key_secret": self.s3.secret_key,
            "postgres_pgbackrest_cipher_pass": CIPHER_PASS,
            "postgres_port": self.server.port,
            "_postgres_pgbackrest_conf": str(self.conf),
            "_postgres_pgbackrest_pg_path": str(self.server.data),
            "_postgres_pgbackrest_pg_socket_path": str(self.server.socket_dir),
            "_postgres_pgbackrest_backup_script": str(self.backup_script),
            "_postgres_pgbackrest_restore_script": str(self.restore_script),
            "_postgres_pgbackrest_check_script": str(self.check_script),
            "_postgres_pgbackrest_stamp_dir": str(self.stamps),
            **overrides,
        }

    def as_postgres(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["runuser", "-u", "postgres", "--", *cmd], capture_output=True, text=True, check=False)
        if check:
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc


def _archive_settings(tmp_path: Path, conf: Path) -> dict[str, str]:
    """The archive lines of the role's conf.d drop-in, rendered with pgBackRest on."""
    text = render_role_template(
        "postgres",
        "postgresql.conf.j2",
        tmp_path / "90-mlops-mlflow.conf",
        tmp_path,
        {"postgres_pgbackrest_enabled": True, "_postgres_pgbackrest_conf": str(conf)},
    )
    settings = {}
    for line in text.splitlines():
        name, _, value = line.partition(" = ")
        if name in ("wal_level", "archive_mode", "archive_command", "archive_timeout"):
            settings[name] = value
    assert set(settings) == {"wal_level", "archive_mode", "archive_command", "archive_timeout"}, text
    return settings


@pytest.fixture(scope="module")
def setup(seaweedfs_s3, tmp_path_factory):  # noqa: F811 - fixture
    seaweedfs_s3.client().create_bucket(Bucket=BUCKET)
    # The postgres user reads the config and runs the scripts: a world-traversable directory.
    root = Path(tempfile.mkdtemp(prefix="pgbackrest-test-"))
    root.chmod(0o755)
    (root / "stamps").mkdir()
    shutil.chown(root / "stamps", "postgres", "postgres")
    proxy = TlsProxy(seaweedfs_s3.port, root / "tls")
    server = PostgresServer(settings=_archive_settings(tmp_path_factory.mktemp("render"), root / "pgbackrest.conf"))
    try:
        server.start()
        yield Setup(seaweedfs_s3, proxy, root, server)
    finally:
        server.stop()
        proxy.stop()
        shutil.rmtree(root, ignore_errors=True)
        seaweedfs_s3.empty_and_delete(BUCKET)


def _apply(
    setup: Setup, tmp_path: Path, *, check: bool = False, **overrides
) -> tuple[subprocess.CompletedProcess, list]:
    play = {"hosts": "localhost", "gather_facts": False, "tasks": STEPS}
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = run_playbook([play], tmp_path, variables=setup.variables(**overrides), check=check)
    return proc, task_results(proc)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"postgres_pgbackrest_s3_key_secret": "not-the-secret-key-000"}, "postgres_pgbackrest_s3_key_secret"),
        ({"postgres_pgbackrest_s3_key": "NOSUCHACCESSKEY00001"}, "postgres_pgbackrest_s3_key"),
        ({"postgres_pgbackrest_s3_bucket": "no-such-bucket"}, "postgres_pgbackrest_s3_bucket (no such bucket)"),
        ({"postgres_pgbackrest_s3_port": 1}, "postgres_pgbackrest_s3_endpoint and postgres_pgbackrest_s3_port"),
    ],
    ids=["wrong-secret", "wrong-key", "missing-bucket", "unreachable"],
)
def test_bad_repository_fails_before_anything_is_written(setup, tmp_path, overrides, named):
    proc, ran = _apply(setup, tmp_path, **overrides)
    assert proc.returncode != 0
    message = failure_messages(ran)
    assert named in message, message
    assert "Nothing was changed" in message
    # pgBackRest's own first error line is quoted (a regex that never matched once hid it).
    assert "pgBackRest said: ERROR: [" in message, message
    assert setup.s3.secret_key not in proc.stdout
    assert not setup.conf.exists()
    assert changed_tasks(ran) == []


def test_steps_check_apply_then_nothing_to_change(setup, tmp_path):
    proc, ran = _apply(setup, tmp_path / "check", check=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Write the pgBackRest configuration" in changed_tasks(ran)
    assert "Install the pgBackRest scripts" in changed_tasks(ran)
    assert not setup.conf.exists() and not setup.backup_script.exists()

    proc, ran = _apply(setup, tmp_path / "apply")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert {
        "Write the pgBackRest configuration",
        "Create the pgBackRest stanza",
        "Install the pgBackRest scripts",
    } <= set(changed_tasks(ran))
    assert oct(setup.conf.stat().st_mode & 0o777) == "0o640"
    assert f"repo1-cipher-pass={CIPHER_PASS}" in setup.conf.read_text()
    assert CIPHER_PASS not in proc.stdout and setup.s3.secret_key not in proc.stdout
    # The archive check ran: WAL is in the repository.
    info = json.loads(
        setup.as_postgres("pgbackrest", f"--config={setup.conf}", "--stanza=mlflow", "--output=json", "info").stdout
    )
    # The new stanza got its first full backup at once (WAL alone restores nothing).
    assert "Take the first full backup of the new stanza" in changed_tasks(ran)
    assert info[0]["status"]["code"] == 0, info
    assert [backup["type"] for backup in info[0]["backup"]] == ["full"], info
    assert (setup.stamps / "last-full-backup").exists()
    assert info[0]["archive"][0]["max"], info
    assert setup.server.psql("show archive_timeout") == "1min"

    proc, ran = _apply(setup, tmp_path / "again")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert changed_tasks(ran) == []

    proc, ran = _apply(setup, tmp_path / "check-again", check=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert changed_tasks(ran) == []


def _pg_options(server: PostgresServer) -> str:
    options = (
        f"-c listen_addresses={server.host} -c port={server.port} -c unix_socket_directories={server.socket_dir} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    return options + "".join(f" -c {name}={value}" for name, value in server.settings.items())


def _pg_ctl(server: PostgresServer, action: str) -> None:
    args = [str(server.bin / "pg_ctl"), "-D", str(server.data), "-w", "-t", "120"]
    if action == "start":
        args += ["-o", _pg_options(server), "-l", str(server.log), "start"]
    else:
        args += ["-m", "fast", "stop"]
    proc = subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr + server.log_tail()


def _restore(setup: Setup, *target: str) -> None:
    _pg_ctl(setup.server, "stop")
    setup.as_postgres(str(setup.restore_script), *target)
    _pg_ctl(setup.server, "start")
    deadline = time.monotonic() + 120
    while setup.server.psql("select pg_is_in_recovery()") != "f":
        assert time.monotonic() < deadline, setup.server.log_tail()
        time.sleep(0.5)


def _names(setup: Setup) -> list[str]:
    return setup.server.psql("select name from experiments order by name", "mlflowdb").splitlines()


def test_backup_delete_by_mistake_then_restore(setup, tmp_path):
    if not setup.backup_script.exists():
        proc, _ = _apply(setup, tmp_path)
        assert proc.returncode == 0, proc.stdout[-4000:]
    server = setup.server
    server.psql("create database mlflowdb")
    server.psql("create table experiments (name text primary key)", "mlflowdb")
    server.psql("insert into experiments values ('baseline')", "mlflowdb")

    setup.as_postgres(str(setup.backup_script), "full")
    stamp = setup.stamps / "last-full-backup"
    assert stamp.exists()
    assert (setup.stamps / "lock").is_dir()  # the lock is beside the stamps, not in a private /tmp
    first_stamp = stamp.read_text()
    fresh = setup.as_postgres(str(setup.check_script))
    report = json.loads(fresh.stdout)
    assert report["fresh"] is True and report["type"] == "full", report
    stale = setup.as_postgres(str(setup.check_script), "-1", check=False)
    assert stale.returncode == 1 and json.loads(stale.stdout)["fresh"] is False

    server.psql("insert into experiments values ('exp-a'), ('exp-b')", "mlflowdb")
    time.sleep(1.1)
    target = server.psql("select now()")
    time.sleep(1.1)
    server.psql("delete from experiments where name in ('exp-a', 'exp-b')", "mlflowdb")  # by mistake
    server.psql("insert into experiments values ('exp-later')", "mlflowdb")
    # Ship the segment with the last commits now rather than after archive_timeout.
    setup.as_postgres("pgbackrest", f"--config={setup.conf}", "--stanza=mlflow", "check")

    # A backup that cannot reach the server fails loudly and stamps nothing.
    _pg_ctl(server, "stop")
    failed = setup.as_postgres(str(setup.backup_script), "diff", check=False)
    assert failed.returncode != 0
    assert not (setup.stamps / "last-diff-backup").exists()
    _pg_ctl(server, "start")

    _restore(setup)
    assert _names(setup) == ["baseline", "exp-later"]

    _restore(setup, target)
    assert _names(setup) == ["baseline", "exp-a", "exp-b"]
    assert stamp.read_text() == first_stamp
