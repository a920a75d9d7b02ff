"""Unit tests for mlflow_db's module_utils: URIs, libpq env, redaction, backups, probe results."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sqlite3

import pytest
from ansible_collections.mlops.mlflow.plugins.module_utils import mlflow_db as m

SECRET = "p@ss:w/rd%&x"
ENCODED = "p%40ss%3Aw%2Frd%25%26x"
PG_URI = f"postgresql+psycopg2://mlflow:{ENCODED}@db.example:6432/mlflow?sslmode=require"
STAMP = datetime.datetime(2026, 11, 23, 3, 15, 0, tzinfo=datetime.UTC)


def probe_line(**data) -> str:
    return m.RESULT_MARKER + json.dumps(data) + "\n"


class FakeRun:
    """Stands in for AnsibleModule.run_command; records argv and environment of each call."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.calls: list[tuple[list[str], dict]] = []

    def __call__(self, argv, environ_update=None, **_kwargs):
        self.calls.append((list(argv), dict(environ_update or {})))
        response = self.responses.pop(0)
        return response(argv) if callable(response) else response


# -- URI parsing and the libpq environment ---------------------------------------------------


def test_postgres_uri_parts_and_libpq_env():
    store = m.StoreUri(PG_URI)
    assert (store.backend, store.driver, store.user, store.password) == ("postgresql", "psycopg2", "mlflow", SECRET)
    assert (store.host, store.port, store.database) == ("db.example", 6432, "mlflow")
    assert store.pg_env(timeout=7) == {
        "PGHOST": "db.example",
        "PGPORT": "6432",
        "PGUSER": "mlflow",
        "PGPASSWORD": SECRET,
        "PGDATABASE": "mlflow",
        "PGSSLMODE": "require",
        "PGCONNECT_TIMEOUT": "7",
    }


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("postgresql://u@h/db", {"PGHOST": "h", "PGUSER": "u", "PGDATABASE": "db"}),
        (
            "postgres://u@/db?host=/var/run/postgresql&port=5433",
            {"PGHOST": "/var/run/postgresql", "PGPORT": "5433", "PGUSER": "u", "PGDATABASE": "db"},
        ),
        (
            "postgresql+psycopg2://u@h/db?password=q%20w&sslrootcert=/etc/ca.pem&application_name=x",
            {
                "PGHOST": "h",
                "PGUSER": "u",
                "PGPASSWORD": "q w",
                "PGDATABASE": "db",
                "PGSSLROOTCERT": "/etc/ca.pem",
                "PGAPPNAME": "x",
            },
        ),
        (
            "postgresql://u:pw@[::1]:5432/db",
            {"PGHOST": "::1", "PGPORT": "5432", "PGUSER": "u", "PGPASSWORD": "pw", "PGDATABASE": "db"},
        ),
    ],
)
def test_libpq_env_variants(uri, expected):
    assert m.StoreUri(uri).pg_env() == expected


@pytest.mark.parametrize(
    ("uri", "backend", "database"),
    [
        ("sqlite:////var/lib/mlflow/mlflow.db", "sqlite", "/var/lib/mlflow/mlflow.db"),
        ("sqlite:////var/lib/mlflow/mlflow.db?timeout=5", "sqlite", "/var/lib/mlflow/mlflow.db"),
        ("mysql+pymysql://u:p@h:3306/mlflow", "mysql", "mlflow"),
        ("mariadb+pymysql://u:p@h/mlflow", "mysql", "mlflow"),
        ("postgres://u@h/mlflow", "postgresql", "mlflow"),
        ("mssql+pyodbc://u:p@h/mlflow", "mssql", "mlflow"),
    ],
)
def test_backends(uri, backend, database):
    store = m.StoreUri(uri)
    assert (store.backend, store.database) == (backend, database)


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("not a uri", "dialect[+driver]://"),
        ("/var/lib/mlflow.db", "dialect[+driver]://"),
        ("Postgres!://x", "dialect[+driver]://"),
        ("postgresql://u:p@h:notaport/db", "invalid port"),
        ("postgresql://u:p@h:99999/db", "invalid port"),
        ("sqlite:///relative.db", "absolute path"),
        ("sqlite://", "absolute path"),
        ("sqlite:///:memory:", "absolute path"),
    ],
)
def test_malformed_uris_fail_clearly(uri, fragment):
    with pytest.raises(m.MlflowDbError, match=fragment.replace("[", r"\[").replace("+", r"\+")):
        m.StoreUri(uri)


def test_invalid_port_message_does_not_echo_the_uri():
    with pytest.raises(m.MlflowDbError) as caught:
        m.StoreUri("postgresql://u:hunter2secret@h:x/db")
    assert "hunter2secret" not in str(caught.value)


# -- redaction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "redacted"),
    [
        (PG_URI, "postgresql+psycopg2://mlflow:********@db.example:6432/mlflow?sslmode=require"),
        ("postgresql://u:pw@h/db?password=pw2&sslmode=x", "postgresql://u:********@h/db?password=********&sslmode=x"),
        ("postgresql://u@h/db?sslmode=require&password=pw2", "postgresql://u@h/db?sslmode=require&password=********"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:////var/lib/mlflow/mlflow.db", "sqlite:////var/lib/mlflow/mlflow.db"),
        ("mysql://u:a:b:c@h/db", "mysql://u:********@h/db"),
    ],
)
def test_redacted(uri, redacted):
    assert m.StoreUri(uri).redacted == redacted


def test_scrub_hides_raw_encoded_and_plus_encoded_password():
    store = m.StoreUri(PG_URI)
    message = (
        f"could not connect to {PG_URI} as mlflow with password {SECRET} ({ENCODED}) "
        f"or {SECRET.replace(' ', '+')} / {ENCODED.lower()}"
    )
    scrubbed = store.scrub(message)
    assert SECRET not in scrubbed and ENCODED not in scrubbed and ENCODED.lower() not in scrubbed.lower()
    assert store.redacted in scrubbed
    assert store.scrub(None) == ""


# -- backups ---------------------------------------------------------------------------------


def test_backup_name():
    assert (
        m.backup_name("/var/lib/mlflow/mlflow.db", "abc123", "sqlite", STAMP) == "mlflow-20261123T031500Z-abc123.sqlite"
    )
    assert m.backup_name("mlflow", "0584bdc529eb", "dump", STAMP) == "mlflow-20261123T031500Z-0584bdc529eb.dump"
    assert m.backup_name("my db/../x", "r1", "dump", STAMP) == "x-20261123T031500Z-r1.dump"
    assert m.backup_name("we ird", None, "dump", STAMP) == "we_ird-20261123T031500Z-empty.dump"


def test_retention_keeps_newest_and_only_touches_our_own_backups(tmp_path):
    for day in range(1, 8):
        (tmp_path / f"mlflow-202611{day:02d}T000000Z-r{day}.dump").write_text("x")
    others = [
        "mlflow-prod-20261101T000000Z-r.dump",  # another database whose name starts the same
        "other-20261101T000000Z-r.dump",
        "mlflow-20261101T000000Z-r.sqlite",  # other suffix
        ".mlflow-20261101T000000Z-r.dump.partial",
        "mlflow-notes.dump",
    ]
    for name in others:
        (tmp_path / name).write_text("x")
    assert [os.path.basename(p) for p in m.list_backups(str(tmp_path), "mlflow", "dump")][:2] == [
        "mlflow-20261107T000000Z-r7.dump",
        "mlflow-20261106T000000Z-r6.dump",
    ]
    removed = m.prune_backups(str(tmp_path), "mlflow", "dump", 3)
    assert len(removed) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [
            "mlflow-20261105T000000Z-r5.dump",
            "mlflow-20261106T000000Z-r6.dump",
            "mlflow-20261107T000000Z-r7.dump",
            *others,
        ]
    )
    assert m.list_backups(str(tmp_path / "missing"), "mlflow", "dump") == []


def test_sqlite_backup_is_a_private_consistent_copy(tmp_path):
    source = tmp_path / "odd name?#.db"
    with sqlite3.connect(source) as conn:
        conn.execute("create table t (x int)")
        conn.execute("insert into t values (7)")
    target = tmp_path / "backup.sqlite"
    m.sqlite_backup(str(source), str(target))
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    with sqlite3.connect(target) as conn:
        assert conn.execute("select x from t").fetchall() == [(7,)]
    with pytest.raises(m.MlflowDbError, match="does not exist"):
        m.sqlite_backup(str(tmp_path / "nope.db"), str(tmp_path / "b.sqlite"))


def _move(src, dest):
    os.rename(src, dest)


def test_make_backup_sqlite_private_dir_and_retention(tmp_path):
    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table alembic_version (version_num varchar(32))")
    backups = tmp_path / "backups"
    for day in range(1, 4):
        backups.mkdir(exist_ok=True)
        (backups / f"mlflow-202601{day:02d}T000000Z-r.sqlite").write_text("old")
    store = m.StoreUri(f"sqlite:///{db}")
    path = m.make_backup(store, str(backups), "abc", 2, FakeRun(), _move, now=STAMP)
    assert path == str(backups / "mlflow-20261123T031500Z-abc.sqlite")
    assert oct(backups.stat().st_mode & 0o777) == "0o700"
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in backups.iterdir()) == ["mlflow-20260103T000000Z-r.sqlite", os.path.basename(path)]
    with pytest.raises(m.MlflowDbError, match="already exists"):
        m.make_backup(store, str(backups), "abc", 2, FakeRun(), _move, now=STAMP)


def test_make_backup_postgres_passes_credentials_in_the_environment_only(tmp_path):
    def pg_dump(argv):
        with open(argv[argv.index("--file") + 1], "w") as handle:
            handle.write("PGDMP")
        return 0, "", ""

    runner = FakeRun(pg_dump)
    store = m.StoreUri(PG_URI)
    path = m.make_backup(store, str(tmp_path / "b"), "r1", 5, runner, _move, pg_dump="/usr/bin/pg_dump", timeout=4)
    argv, env = runner.calls[0]
    assert argv[:3] == ["/usr/bin/pg_dump", "--format=custom", "--no-password"]
    assert not any(SECRET in arg or ENCODED in arg for arg in argv)
    assert env["PGPASSWORD"] == SECRET and env["PGCONNECT_TIMEOUT"] == "4"
    assert os.path.basename(path).startswith("mlflow-") and path.endswith("-r1.dump")
    with open(path) as handle:
        assert handle.read() == "PGDMP"


def test_make_backup_postgres_failure_leaves_no_file_and_no_password(tmp_path):
    def pg_dump(argv):
        with open(argv[argv.index("--file") + 1], "w") as handle:
            handle.write("half")
        return 1, "", f'pg_dump: error: connection to "{PG_URI}" failed: password {SECRET} rejected'

    store = m.StoreUri(PG_URI)
    with pytest.raises(m.MlflowDbError) as caught:
        m.make_backup(store, str(tmp_path / "b"), "r1", 5, FakeRun(pg_dump), _move, pg_dump="/usr/bin/pg_dump")
    assert "pg_dump of" in str(caught.value) and "rc=1" in str(caught.value)
    assert SECRET not in str(caught.value) and ENCODED not in str(caught.value)
    assert list((tmp_path / "b").iterdir()) == []


@pytest.mark.parametrize("uri", ["mysql+pymysql://u:p@h/mlflow", "mssql+pyodbc://u:p@h/mlflow"])
def test_make_backup_refuses_unsupported_backends(uri, tmp_path):
    with pytest.raises(m.MlflowDbError, match="set backup=false"):
        m.make_backup(m.StoreUri(uri), str(tmp_path), "r", 5, FakeRun(), _move)
    assert list(tmp_path.iterdir()) == []


MYSQL_URI = f"mysql+pymysql://mlflow:{ENCODED}@127.0.0.1:3306/mlflow?charset=utf8mb4"


def _mariadb_dump(text, rc=0, stderr=""):
    def run(argv):
        result = next(arg for arg in argv if arg.startswith("--result-file="))
        with open(result.split("=", 1)[1], "w") as handle:
            handle.write(text)
        return rc, "", stderr

    return run


def test_make_backup_mysql_dumps_one_transaction_with_the_password_in_the_environment(tmp_path):
    runner = FakeRun(_mariadb_dump("-- MariaDB dump"))
    store = m.StoreUri(MYSQL_URI)
    dump = "/usr/bin/mariadb-dump"
    path = m.make_backup(store, str(tmp_path / "b"), "r1", 5, runner, _move, timeout=4, mysqldump=dump)
    argv, env = runner.calls[0]
    assert argv[0] == "/usr/bin/mariadb-dump" and argv[-1] == "mlflow"
    assert {"--single-transaction", "--protocol=TCP", "--host=127.0.0.1", "--port=3306", "--user=mlflow"} <= set(argv)
    # mariadb-dump refuses options it does not know (--connect-timeout among them): exit 7.
    assert not [arg for arg in argv if arg.startswith("--connect")]
    assert not any(SECRET in arg or ENCODED in arg for arg in argv)
    assert env == {"MYSQL_PWD": SECRET}
    assert os.path.basename(path).startswith("mlflow-") and path.endswith("-r1.sql")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    with open(path) as handle:
        assert handle.read() == "-- MariaDB dump"


def test_make_backup_mysql_failure_leaves_no_file_and_no_password(tmp_path):
    dump = _mariadb_dump("half", rc=2, stderr=f"mariadb-dump: Got error: 1045: Access denied (password {SECRET})")
    with pytest.raises(m.MlflowDbError) as caught:
        m.make_backup(
            m.StoreUri(MYSQL_URI), str(tmp_path / "b"), "r1", 5, FakeRun(dump), _move, mysqldump="/usr/bin/mariadb-dump"
        )
    assert "mariadb-dump of" in str(caught.value) and "rc=2" in str(caught.value)
    assert SECRET not in str(caught.value) and ENCODED not in str(caught.value)
    assert list((tmp_path / "b").iterdir()) == []


def test_make_backup_postgres_without_pg_dump(tmp_path):
    with pytest.raises(m.MlflowDbError, match="pg_dump was not found"):
        m.make_backup(m.StoreUri(PG_URI), str(tmp_path / "b"), "r", 5, FakeRun(), _move, pg_dump=None)


# -- the probe and the result -----------------------------------------------------------------


def test_parse_probe_output_takes_the_marked_line():
    out = 'noise {"x": 0}\n' + probe_line(a=1) + "warning\n" + probe_line(b=2)
    assert m.parse_probe_output(out) == {"b": 2}
    assert m.parse_probe_output('{"a": 1}') is None
    assert m.parse_probe_output(m.RESULT_MARKER + "{broken") is None
    assert m.parse_probe_output(None) is None


def test_run_probe_passes_the_uri_in_the_environment_only():
    runner = FakeRun((0, probe_line(stage="connect", head_revision="h", current_revision="c"), ""))
    store = m.StoreUri(PG_URI)
    data = m.run_probe(runner, shutil.which("true") or "/bin/true", store, "probe", 5)
    assert data["current_revision"] == "c"
    argv, env = runner.calls[0]
    assert env == {m.URI_ENV: PG_URI}
    assert argv[1:2] == ["-c"] and argv[3:] == ["probe", "5"]
    assert not any(SECRET in arg or ENCODED in arg for arg in argv)


def test_run_probe_upgrade_passes_the_expected_revision():
    runner = FakeRun((0, probe_line(stage="upgrade", revision="h"), ""))
    m.run_probe(runner, shutil.which("true") or "/bin/true", m.StoreUri(PG_URI), "upgrade", 5, "c")
    assert runner.calls[0][0][3:] == ["upgrade", "5", "c"]


@pytest.mark.parametrize(
    ("stdout", "stderr", "expected"),
    [
        ("", "ModuleNotFoundError: No module named 'mlflow'", "cannot use mlflow with"),
        (probe_line(stage="import", error="ImportError: no psycopg2"), "", "cannot use mlflow with"),
        (
            probe_line(stage="connect", error=f"OperationalError: {PG_URI} password {SECRET} failed"),
            "",
            "cannot read the backend store postgresql+psycopg2://mlflow:********@db.example",
        ),
        (
            probe_line(stage="upgrade", head_revision="h", error=f"ProgrammingError: {ENCODED} duplicate table"),
            "",
            "migration of postgresql+psycopg2://mlflow:********@db.example:6432/mlflow?sslmode=require from c to h",
        ),
    ],
)
def test_run_probe_failures_are_named_and_scrubbed(stdout, stderr, expected):
    runner = FakeRun((1, stdout, stderr))
    with pytest.raises(m.MlflowDbError) as caught:
        m.run_probe(runner, shutil.which("true") or "/bin/true", m.StoreUri(PG_URI), "upgrade", 5, "c")
    assert expected in str(caught.value)
    text = repr(caught.value) + repr(caught.value.details)
    assert SECRET not in text and ENCODED not in text


def test_run_probe_missing_python(tmp_path):
    with pytest.raises(m.MlflowDbError, match="does not exist or is not executable"):
        m.run_probe(FakeRun(), str(tmp_path / "python"), m.StoreUri(PG_URI), "probe", 5)


PROBE = {"mlflow_version": "3.17.2", "head_revision": "head", "known_revision": True, "foreign_tables": []}


@pytest.mark.parametrize(
    ("current", "needed"),
    [("head", False), ("older", True), (None, True)],
)
def test_build_result(current, needed):
    result = m.build_result(m.StoreUri(PG_URI), dict(PROBE, current_revision=current))
    assert result == {
        "changed": False,
        "upgraded": False,
        "backup_path": None,
        "backend": "postgresql",
        "mlflow_version": "3.17.2",
        "current_revision": current,
        "head_revision": "head",
        "revision": current,
        "upgrade_needed": needed,
    }


def test_build_result_refuses_a_newer_store():
    with pytest.raises(m.MlflowDbError) as caught:
        m.build_result(m.StoreUri(PG_URI), dict(PROBE, current_revision="ffff", known_revision=False))
    assert "is at revision ffff, which the installed mlflow 3.17.2 does not know" in str(caught.value)
    assert "newer than the installed mlflow" in str(caught.value)
    assert caught.value.details["current_revision"] == "ffff"
    assert SECRET not in str(caught.value)


def test_build_result_refuses_foreign_tables():
    with pytest.raises(m.MlflowDbError, match="not an MLflow store"):
        m.build_result(m.StoreUri(PG_URI), dict(PROBE, current_revision=None, foreign_tables=["invoices"]))


def test_revision_diff():
    assert m.revision_diff("a", "b") == {"before": "revision: a\n", "after": "revision: b\n"}
    assert m.revision_diff(None, "b")["before"] == "revision: none (empty database)\n"
