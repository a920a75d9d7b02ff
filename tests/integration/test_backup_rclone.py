"""backup role: artifacts and SQLite stores shipped off-host with rclone, for real.

Two SeaweedFS S3 servers on 127.0.0.1 play mlflow's artifact store (source) and the off-host
backup target. The role's own steps run on localhost (tasks/preflight.yml, probe.yml and
configure.yml), pointed at a temporary directory by the role's internal path variables; then
the backup script they rendered runs as the timers would run it.

- Wrong keys, a missing bucket or an unreachable endpoint fail the probe with a message naming
  the variable to fix, and nothing is written.
- Check mode reports the changes and writes nothing; apply writes the rclone configuration
  (0600, keys in it, not in the output); a second apply changes nothing.
- artifacts: the target holds the source's objects byte for byte (sha256); an object overwritten
  or deleted at the source is, after the next run, under history/artifacts/<stamp>/ in its old
  version; history stamps older than backup_artifacts_keep_days are purged; a target object
  corrupted behind rclone's back makes `check` exit non-zero; a local artifact directory is a
  source too.
- stores: a SQLite database copied while a writer keeps inserting is a consistent, intact
  database on the target; the newest backup_stores_keep copies stay; a store that cannot be
  copied fails the job (non-zero) and ships nothing.
- owner: the first job names its host in <prefix>/owner; a job on another host (a new one, before
  its restore) exits non-zero and writes nothing, until `claim` makes that host the writer.
- restore: `restore-artifacts` copies every backed-up object back into an emptied store, equal;
  `fetch-store` fetches the newest copy of a store, or the newest at or before a time, and refuses
  a copy that is no SQLite database.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import changed_tasks, failure_messages, run_playbook, task_results
from support.s3_servers import _remove_weed_sockets, seaweedfs_s3, start_seaweedfs  # noqa: F401 - fixture

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed (apt install rclone)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the role's configure step writes root-owned files"),
]

SOURCE_BUCKET = "mlflow-artifacts"
TARGET_BUCKET = "mlflow-backups"
TARGET_KEYS = "backup_target_access_key and backup_target_secret_key (the endpoint refused them)"
STEPS = [
    {"ansible.builtin.import_role": {"name": "mlops.mlflow.backup", "tasks_from": name}}
    for name in ("preflight", "probe", "configure")
]


class Setup:
    """The two S3 endpoints, a scratch root, and the role variables that point the steps at them."""

    def __init__(self, source, target, root: Path):
        self.source, self.target, self.root = source, target, root
        self.config = root / "etc" / "rclone.conf"
        self.script = root / "sbin" / "mlops-backup"
        self.staging = root / "state" / "staging"
        self.stores = root / "stores"
        self.stores.mkdir(parents=True)
        (root / "sbin").mkdir()

    def variables(self, **overrides) -> dict:
        return {
            "backup_enabled": True,
            "backup_target_endpoint_url": self.target.endpoint_url,
            "backup_target_region": "us-east-1",
            "backup_target_provider": "SeaweedFS",
            "backup_target_bucket": TARGET_BUCKET,
            "backup_target_prefix": "site/pi",
            "backup_target_access_key": self.target.access_key,
            "backup_target_secret_key": self.target.secret_key,
            "backup_artifacts_enabled": True,
            "backup_artifacts_source_bucket": SOURCE_BUCKET,
            "backup_artifacts_source_prefix": "artifacts",
            "backup_artifacts_source_endpoint_url": self.source.endpoint_url,
            "backup_artifacts_source_region": "us-east-1",
            "backup_artifacts_source_provider": "Other",
            "backup_artifacts_source_access_key": self.source.access_key,
            "backup_artifacts_source_secret_key": self.source.secret_key,
            "backup_artifacts_source_dir": "/nonexistent/unused-with-a-bucket",
            "backup_artifacts_on_calendar": "hourly",
            "backup_artifacts_keep_days": 7,
            "backup_stores": [
                {"name": "mlflow", "path": str(self.stores / "mlflow.db")},
                {"name": "basic_auth", "path": str(self.stores / "basic_auth.db")},
            ],
            "backup_stores_on_calendar": "*-*-* *:00/15:00",
            "backup_stores_keep": 2,
            "backup_transfers": 2,
            "backup_checkers": 4,
            "_backup_config_dir": str(self.config.parent),
            "_backup_config": str(self.config),
            "_backup_state_dir": str(self.staging.parent),
            "_backup_staging_dir": str(self.staging),
            "_backup_lib_dir": str(self.root / "lib"),
            "_backup_script": str(self.script),
            **overrides,
        }

    def run(self, job: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["/usr/bin/python3", str(self.script), job, *args], capture_output=True, text=True, check=False
        )

    def run_ok(self, job: str, *args: str) -> subprocess.CompletedProcess:
        proc = self.run(job, *args)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        return proc


@pytest.fixture(scope="module")
def setup(seaweedfs_s3, tmp_path_factory):  # noqa: F811 - fixture
    target = start_seaweedfs()
    seaweedfs_s3.client().create_bucket(Bucket=SOURCE_BUCKET)
    target.client().create_bucket(Bucket=TARGET_BUCKET)
    root = tmp_path_factory.mktemp("backup")
    try:
        yield Setup(seaweedfs_s3, target, root)
    finally:
        seaweedfs_s3.empty_and_delete(SOURCE_BUCKET)
        ports = target.ports
        target.stop()
        _remove_weed_sockets(ports)


def _apply(setup: Setup, tmp_path: Path, *, check: bool = False, **overrides):
    play = {"hosts": "localhost", "gather_facts": False, "tasks": STEPS}
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = run_playbook([play], tmp_path, variables=setup.variables(**overrides), check=check)
    return proc, task_results(proc)


@pytest.fixture(scope="module")
def applied(setup, tmp_path_factory):
    proc, _ = _apply(setup, tmp_path_factory.mktemp("apply"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return setup


def _objects(server, bucket: str, prefix: str) -> dict[str, str]:
    """{key below prefix: sha256 of its content}."""
    s3, out = server.client(), {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            out[item["Key"][len(prefix) + 1 :]] = hashlib.sha256(body).hexdigest()
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"backup_target_secret_key": "not-the-secret-key-000"}, TARGET_KEYS),
        ({"backup_target_access_key": "NOSUCHACCESSKEY00001"}, TARGET_KEYS),
        ({"backup_target_bucket": "no-such-bucket"}, "backup_target_bucket (no such bucket)"),
        ({"backup_target_endpoint_url": "http://127.0.0.1:1"}, "backup_target_endpoint_url (unreachable)"),
        (
            {"backup_artifacts_source_secret_key": "not-the-secret-key-000"},
            "backup_artifacts_source_access_key and backup_artifacts_source_secret_key",
        ),
    ],
    ids=["wrong-secret", "wrong-key", "missing-bucket", "unreachable", "wrong-source-secret"],
)
def test_bad_target_fails_before_anything_is_written(setup, tmp_path, overrides, named):
    proc, ran = _apply(setup, tmp_path, **overrides)
    assert proc.returncode != 0
    message = failure_messages(ran)
    assert named in message, message
    assert "Nothing was changed" in message
    for secret in (setup.target.secret_key, setup.source.secret_key, "not-the-secret-key-000"):
        assert secret not in proc.stdout
    assert not setup.config.exists() and not setup.script.exists()
    assert changed_tasks(ran) == []


def test_steps_check_apply_then_nothing_to_change(setup, tmp_path):
    proc, ran = _apply(setup, tmp_path / "check", check=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert {"Write the rclone configuration", "Install the backup script"} <= set(changed_tasks(ran))
    assert not setup.config.exists() and not setup.script.exists()

    proc, ran = _apply(setup, tmp_path / "apply")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert {
        "Write the rclone configuration",
        "Install the SQLite copy scripts",
        "Install the backup script",
    } <= set(changed_tasks(ran))
    assert stat.S_IMODE(setup.config.stat().st_mode) == 0o600
    assert stat.S_IMODE(setup.config.parent.stat().st_mode) == 0o700
    conf = setup.config.read_text()
    assert f"secret_access_key = {setup.target.secret_key}" in conf
    assert f"secret_access_key = {setup.source.secret_key}" in conf
    for secret in (setup.target.secret_key, setup.source.secret_key):
        assert secret not in proc.stdout
        assert secret not in setup.script.read_text()

    proc, ran = _apply(setup, tmp_path / "again")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert changed_tasks(ran) == []


def test_artifacts_are_synced_verified_and_old_versions_kept(applied):
    setup = applied
    src = setup.source.client()
    files = {
        "1/run-a/artifacts/model/model.pkl": os.urandom(3 * 1024 * 1024 + 17),
        "1/run-a/artifacts/metrics.json": b'{"loss": 0.25}',
        "1/run-b/artifacts/notes.txt": b"first version of the notes\n",
        "2/run-c/artifacts/data.csv": b"a,b\n1,2\n",
    }
    for key, body in files.items():
        src.put_object(Bucket=SOURCE_BUCKET, Key="artifacts/" + key, Body=body)
    # A history stamp older than backup_artifacts_keep_days (7), and one within it.
    tgt = setup.target.client()
    tgt.put_object(Bucket=TARGET_BUCKET, Key="site/pi/history/artifacts/20000101T000000Z/1/old.txt", Body=b"old")
    recent = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 86400))
    tgt.put_object(Bucket=TARGET_BUCKET, Key=f"site/pi/history/artifacts/{recent}/1/recent.txt", Body=b"recent")

    setup.run_ok("artifacts")
    assert _objects(setup.target, TARGET_BUCKET, "site/pi/artifacts") == {k: _sha(v) for k, v in files.items()}
    history = _objects(setup.target, TARGET_BUCKET, "site/pi/history/artifacts")
    assert history == {f"{recent}/1/recent.txt": _sha(b"recent")}, history  # the old stamp was purged

    # Overwrite one object, delete another: the next run keeps their old versions under a stamp.
    src.put_object(Bucket=SOURCE_BUCKET, Key="artifacts/1/run-b/artifacts/notes.txt", Body=b"second version\n")
    src.delete_object(Bucket=SOURCE_BUCKET, Key="artifacts/2/run-c/artifacts/data.csv")
    time.sleep(1.1)  # a new stamp
    setup.run_ok("artifacts")
    now = {k: _sha(v) for k, v in files.items() if k != "2/run-c/artifacts/data.csv"}
    now["1/run-b/artifacts/notes.txt"] = _sha(b"second version\n")
    assert _objects(setup.target, TARGET_BUCKET, "site/pi/artifacts") == now
    history = _objects(setup.target, TARGET_BUCKET, "site/pi/history/artifacts")
    stamps = {key.split("/", 1)[0] for key in history} - {recent}
    assert len(stamps) == 1, history
    (stamp,) = stamps
    assert history[f"{stamp}/1/run-b/artifacts/notes.txt"] == _sha(b"first version of the notes\n")
    assert history[f"{stamp}/2/run-c/artifacts/data.csv"] == _sha(b"a,b\n1,2\n")
    setup.run_ok("check")

    # An object corrupted on the target behind rclone's back (same size): check fails loudly.
    good = files["1/run-a/artifacts/metrics.json"]
    tgt.put_object(Bucket=TARGET_BUCKET, Key="site/pi/artifacts/1/run-a/artifacts/metrics.json", Body=b"X" * len(good))
    proc = setup.run("check")
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "metrics.json" in proc.stderr and "check" in proc.stderr
    # The next run repairs it (the corrupt copy goes to history) and verifies.
    setup.run_ok("artifacts")
    setup.run_ok("check")


def test_a_local_artifact_directory_is_a_source(setup, tmp_path):
    directory = tmp_path / "artifacts"
    (directory / "3" / "run-d").mkdir(parents=True)
    (directory / "3" / "run-d" / "image.png").write_bytes(b"\x89PNG" + os.urandom(4096))
    proc, _ = _apply(
        setup,
        tmp_path / "apply",
        backup_artifacts_source_bucket="",
        backup_artifacts_source_dir=str(directory),
        backup_target_prefix="site/local",
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "[source]" not in setup.config.read_text()
    try:
        setup.run_ok("artifacts")
        assert _objects(setup.target, TARGET_BUCKET, "site/local/artifacts") == {
            "3/run-d/image.png": _sha((directory / "3" / "run-d" / "image.png").read_bytes())
        }
    finally:
        proc, _ = _apply(setup, tmp_path / "restore")  # back to the module's setup
        assert proc.returncode == 0, proc.stdout[-4000:]


def _writer(path: Path, stop: threading.Event, written: list[int]) -> None:
    db = sqlite3.connect(path, timeout=30)
    while not stop.is_set():
        with db:
            db.executemany("INSERT INTO metrics (step, value) VALUES (?, ?)", [(i, i * 0.5) for i in range(200)])
        written.append(db.execute("SELECT count(*) FROM metrics").fetchone()[0])
    db.close()


def _shipped(setup: Setup, name: str, tmp_path: Path) -> dict[str, Path]:
    tgt, out = setup.target.client(), {}
    listing = tgt.list_objects_v2(Bucket=TARGET_BUCKET, Prefix=f"site/pi/stores/{name}/").get("Contents", [])
    for item in listing:
        local = tmp_path / name / item["Key"].rsplit("/", 1)[1]
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(tgt.get_object(Bucket=TARGET_BUCKET, Key=item["Key"])["Body"].read())
        out[local.name] = local
    return out


def test_stores_are_copied_online_and_shipped_with_retention(applied, tmp_path):
    setup = applied
    mlflow_db = setup.stores / "mlflow.db"
    with sqlite3.connect(mlflow_db) as db:
        db.execute("CREATE TABLE metrics (id INTEGER PRIMARY KEY, step INTEGER, value REAL)")
    with sqlite3.connect(setup.stores / "basic_auth.db") as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT UNIQUE, password_hash TEXT)")
        db.execute("INSERT INTO users (username, password_hash) VALUES ('admin', 'pbkdf2:sha256:x')")

    stop, written = threading.Event(), []
    writer = threading.Thread(target=_writer, args=(mlflow_db, stop, written))
    writer.start()
    try:
        while len(written) < 5:
            time.sleep(0.05)
        for _ in range(3):
            before = written[-1]
            setup.run_ok("stores")
            after = written[-1]
            time.sleep(1.1)  # one copy per second stamp
    finally:
        stop.set()
        writer.join()

    copies = _shipped(setup, "mlflow", tmp_path)
    assert len(copies) == 2, sorted(copies)  # backup_stores_keep
    newest = copies[max(copies)]
    db = sqlite3.connect(f"file:{newest}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute("SELECT count(*) FROM metrics").fetchone()[0]
        # A consistent snapshot: whole transactions only, between the last two the writer saw.
        assert before <= rows <= after and rows % 200 == 0, (before, rows, after)
    finally:
        db.close()
    (auth,) = list(_shipped(setup, "basic_auth", tmp_path).values())[-1:]
    with sqlite3.connect(f"file:{auth}?mode=ro", uri=True) as db:
        assert db.execute("SELECT username FROM users").fetchall() == [("admin",)]
    assert len(_shipped(setup, "basic_auth", tmp_path / "again")) == 2
    # Nothing stays in staging once shipped.
    assert [p for p in setup.staging.rglob("*") if p.is_file()] == []


def test_a_store_that_cannot_be_copied_fails_the_job(setup, tmp_path):
    proc, _ = _apply(
        setup, tmp_path / "apply", backup_stores=[{"name": "missing", "path": str(setup.stores / "no-such.db")}]
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    try:
        proc = setup.run("stores")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "missing" in proc.stderr and "no SQLite store" in proc.stderr
        listing = setup.target.client().list_objects_v2(Bucket=TARGET_BUCKET, Prefix="site/pi/stores/missing/")
        assert listing.get("KeyCount", 0) == 0
        # The copy script of a store no longer listed goes.
        assert sorted(p.name for p in (setup.root / "lib").iterdir()) == ["sqlite-copy-missing.py"]
    finally:
        proc, _ = _apply(setup, tmp_path / "restore")
        assert proc.returncode == 0, proc.stdout[-4000:]


def _identity(setup: Setup) -> Path:
    return setup.staging.parent / "identity"


def test_a_job_of_another_host_writes_nothing_until_it_claims_the_target(applied):
    setup = applied
    setup.run_ok("artifacts")
    owner = setup.target.client().get_object(Bucket=TARGET_BUCKET, Key="site/pi/owner")["Body"].read().decode()
    first = _identity(setup).read_text().strip()
    assert owner.strip() == first and first.startswith("localhost-")
    # A new host: its own identity, an empty artifact store (what a sync would copy over the backups).
    before = _objects(setup.target, TARGET_BUCKET, "site/pi")
    keys = list(_objects(setup.source, SOURCE_BUCKET, "artifacts"))
    saved = {
        key: setup.source.client().get_object(Bucket=SOURCE_BUCKET, Key="artifacts/" + key)["Body"].read()
        for key in keys
    }
    for key in keys:
        setup.source.client().delete_object(Bucket=SOURCE_BUCKET, Key="artifacts/" + key)
    _identity(setup).write_text("new-host-0123456789abcdef\n")
    try:
        for job in ("artifacts", "stores"):
            proc = setup.run(job)
            assert proc.returncode == 1, proc.stdout + proc.stderr
            assert f"names another host ({first})" in proc.stderr and "mlops_restore_from=target" in proc.stderr
        assert _objects(setup.target, TARGET_BUCKET, "site/pi") == before

        # The restore brings the artifacts back, equal, then the new host claims the target.
        setup.run_ok("restore-artifacts")
        assert _objects(setup.source, SOURCE_BUCKET, "artifacts") == {k: _sha(v) for k, v in saved.items()}
        setup.run_ok("claim")
        owner = setup.target.client().get_object(Bucket=TARGET_BUCKET, Key="site/pi/owner")["Body"].read()
        assert owner.decode().strip() == "new-host-0123456789abcdef"
        setup.run_ok("artifacts")
        setup.run_ok("stores")
        # The old host is now the one refused.
        _identity(setup).write_text(first + "\n")
        assert setup.run("artifacts").returncode == 1
    finally:
        _identity(setup).write_text(first + "\n")
        setup.run_ok("claim")


def test_fetch_store_takes_the_newest_copy_or_the_newest_before_a_time(applied, tmp_path):
    setup = applied
    auth = setup.stores / "basic_auth.db"
    stamps = []
    for user in ("bob", "carol"):
        with sqlite3.connect(auth) as db:
            db.execute("INSERT INTO users (username, password_hash) VALUES (?, 'pbkdf2:sha256:x')", (user,))
        setup.run_ok("stores")
        stamps.append(time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime()))
        time.sleep(1.1)

    def users(path: Path) -> list[str]:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return [row[0] for row in db.execute("SELECT username FROM users ORDER BY id")]

    newest = tmp_path / "newest.db"
    proc = setup.run_ok("fetch-store", "basic_auth", str(newest))
    assert users(newest)[-2:] == ["bob", "carol"] and '"store": "basic_auth"' in proc.stdout
    # In another zone's notation: the same instant.
    earlier = tmp_path / "earlier.db"
    setup.run_ok("fetch-store", "basic_auth", str(earlier), stamps[0].replace("+00", "+00:00"))
    assert users(earlier)[-1] == "bob"
    proc = setup.run("fetch-store", "basic_auth", str(tmp_path / "none.db"), "2001-01-01 00:00:00+00")
    assert proc.returncode == 1 and "no copy of store basic_auth" in proc.stderr, proc.stderr
    proc = setup.run("fetch-store", "basic_auth", str(tmp_path / "none.db"), "2001-01-01 00:00:00")
    assert proc.returncode == 1 and "UTC offset" in proc.stderr, proc.stderr

    # A copy that is no SQLite database (newest by its name) is refused, not handed to the restore.
    future = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + 3600))
    key = f"site/pi/stores/basic_auth/{future}.db"
    setup.target.client().put_object(Bucket=TARGET_BUCKET, Key=key, Body=b"not a database" * 100)
    try:
        proc = setup.run("fetch-store", "basic_auth", str(tmp_path / "bad.db"))
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "not a database" in proc.stderr or "integrity_check" in proc.stderr, proc.stderr
    finally:
        setup.target.client().delete_object(Bucket=TARGET_BUCKET, Key=key)
