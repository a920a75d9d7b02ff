"""mlflow_db main() in-process: argument validation, decisions, check/diff mode and redaction.

The probe/upgrade program is replaced by a fake AnsibleModule.run_command that answers
like the real one (a marked JSON line) and records every call's argv and environment.
"""

from __future__ import annotations

import json
import sqlite3
import sys

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlops.mlflow.plugins.module_utils import mlflow_db as m
from ansible_collections.mlops.mlflow.plugins.modules import mlflow_db

SECRET = "s3cr:t@pw/x"
ENCODED = "s3cr%3At%40pw%2Fx"
PG_URI = f"postgresql+psycopg2://mlflow:{ENCODED}@127.0.0.1:5432/mlflow"
OLD, HEAD = "0584bdc529eb", "dc11669786a5"


def leaked(result: dict) -> bool:
    text = json.dumps(result, default=str)
    return SECRET in text or ENCODED in text or ENCODED.lower() in text.lower()


class FakeMlflow:
    """Answers the probe/upgrade program and pg_dump like the real ones would."""

    def __init__(self, current=OLD, known=True, foreign=(), upgrade_error=None, connect_error=None, pg_dump_rc=0):
        self.current = current
        self.known = known
        self.foreign = list(foreign)
        self.upgrade_error = upgrade_error
        self.connect_error = connect_error
        self.pg_dump_rc = pg_dump_rc
        self.calls: list[tuple[list[str], dict]] = []

    def modes(self) -> list[str]:
        return [argv[3] if argv[1] == "-c" else "pg_dump" for argv, _env in self.calls]

    def __call__(self, args, environ_update=None, **_kwargs):  # set on the class: not bound
        self.calls.append((list(args), dict(environ_update or {})))
        if args[1] != "-c":  # pg_dump
            with open(args[args.index("--file") + 1], "w") as handle:
                handle.write("PGDMP")
            return self.pg_dump_rc, "", "pg_dump: error: boom" if self.pg_dump_rc else ""
        mode = args[3]
        out = {"stage": "connect", "mlflow_version": "3.17.2", "head_revision": HEAD}
        if self.connect_error:
            out["error"] = self.connect_error
            return 1, m.RESULT_MARKER + json.dumps(out) + "\n", ""
        out.update(current_revision=self.current, known_revision=self.known, foreign_tables=self.foreign)
        if mode == "upgrade":
            out["stage"] = "upgrade"
            if self.upgrade_error:
                out["error"] = self.upgrade_error
                return 1, m.RESULT_MARKER + json.dumps(out) + "\n", ""
            self.current = out["revision"] = HEAD
        return 0, "alembic noise\n" + m.RESULT_MARKER + json.dumps(out) + "\n", ""


@pytest.fixture
def fake(monkeypatch):
    def install(**kwargs) -> FakeMlflow:
        runner = FakeMlflow(**kwargs)
        monkeypatch.setattr(AnsibleModule, "run_command", runner)
        return runner

    return install


@pytest.fixture
def sqlite_store(tmp_path):
    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table alembic_version (version_num varchar(32))")
        conn.execute(f"insert into alembic_version values ('{OLD}')")
    return db


def args(uri=PG_URI, **extra):
    return {"backend_store_uri": uri, "python": sys.executable, **extra}


# -- argument validation ------------------------------------------------------------------------


def test_missing_python_fails_without_leaking_the_password(module_main, tmp_path):
    result = module_main(mlflow_db.main, args(python=str(tmp_path / "nope")))
    assert result["failed"] is True and "does not exist" in result["msg"]
    assert result["changed"] is False and result["upgraded"] is False
    assert not leaked(result)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"backup_keep": 0}, "backup_keep must be at least 1"),
        ({"timeout": 0}, "timeout must be at least 1"),
        ({"backend_store_uri": "sqlite:///relative.db"}, "absolute path"),
        ({"backend_store_uri": "nonsense"}, "dialect[+driver]://"),
        ({"backend_store_uri": f"postgresql://u:{ENCODED}@h:port/db"}, "invalid port"),
        ({"state": "latest"}, "value of state must be one of"),
    ],
)
def test_invalid_arguments_fail_clearly(module_main, fake, extra, fragment):
    runner = fake()
    result = module_main(mlflow_db.main, args(**extra))
    assert result["failed"] is True and fragment in result["msg"]
    assert runner.calls == []
    assert not leaked(result)


def test_mysql_backup_is_refused_before_touching_anything(module_main, fake):
    runner = fake()
    result = module_main(mlflow_db.main, args(f"mysql+pymysql://u:{ENCODED}@h/mlflow"), check=True)
    assert result["failed"] is True and "set backup=false" in result["msg"]
    assert runner.calls == []
    assert not leaked(result)


def test_mysql_without_backup_is_upgraded(module_main, fake, tmp_path):
    runner = fake()
    result = module_main(mlflow_db.main, args(f"mysql+pymysql://u:{ENCODED}@h/mlflow", backup=False))
    assert result["changed"] is True and result["upgraded"] is True and result["backup_path"] is None
    assert result["backend"] == "mysql" and runner.modes() == ["probe", "upgrade"]


class FakeMariadbDump(FakeMlflow):
    """Also answers mariadb-dump (argv[0] named by the test): writes its --result-file."""

    dump = ""

    def __call__(self, args, environ_update=None, **kwargs):
        if args[0] != self.dump:
            return super().__call__(args, environ_update=environ_update, **kwargs)
        self.calls.append((list(args), dict(environ_update or {})))
        result = next(arg for arg in args if arg.startswith("--result-file="))
        with open(result.split("=", 1)[1], "w") as handle:
            handle.write("-- MariaDB dump")
        return 0, "", ""


def test_mysql_with_a_dump_program_is_backed_up_then_upgraded(module_main, monkeypatch, tmp_path):
    runner = FakeMariadbDump()
    runner.dump = str(tmp_path / "mariadb-dump")
    monkeypatch.setattr(AnsibleModule, "run_command", runner)
    uri = f"mysql+pymysql://mlflow:{ENCODED}@127.0.0.1:3306/mlflow"
    result = module_main(mlflow_db.main, args(uri, mysqldump=runner.dump, backup_dir=str(tmp_path / "b")))
    assert result["changed"] is True and result["upgraded"] is True
    assert result["backup_path"].endswith(f"-{OLD}.sql")
    assert [argv[0] for argv, _env in runner.calls][1] == runner.dump
    assert runner.calls[1][1] == {"MYSQL_PWD": SECRET}
    assert runner.calls[2][0][3] == "upgrade"
    assert not leaked(result)


# -- decisions ------------------------------------------------------------------------------------


def test_at_head_is_unchanged_and_takes_no_backup(module_main, fake, tmp_path):
    runner = fake(current=HEAD)
    result = module_main(mlflow_db.main, args(backup_dir=str(tmp_path / "b")))
    assert result["changed"] is False and result["upgraded"] is False and result["upgrade_needed"] is False
    assert (result["current_revision"], result["revision"], result["head_revision"]) == (HEAD, HEAD, HEAD)
    assert runner.modes() == ["probe"] and not (tmp_path / "b").exists()


def test_check_mode_reports_and_touches_nothing(module_main, fake, tmp_path):
    runner = fake()
    result = module_main(mlflow_db.main, args(backup_dir=str(tmp_path / "b")), check=True, diff=True)
    assert result["changed"] is True and result["upgrade_needed"] is True and result["upgraded"] is False
    assert (result["current_revision"], result["head_revision"], result["revision"]) == (OLD, HEAD, OLD)
    assert result["diff"] == {"before": f"revision: {OLD}\n", "after": f"revision: {HEAD}\n"}
    assert result["backup_path"] is None
    assert runner.modes() == ["probe"] and not (tmp_path / "b").exists()


def test_state_checked_never_changes(module_main, fake, tmp_path):
    runner = fake()
    result = module_main(mlflow_db.main, args(state="checked", backup_dir=str(tmp_path / "b")), diff=True)
    assert result["changed"] is False and result["upgrade_needed"] is True and "diff" not in result
    assert runner.modes() == ["probe"] and not (tmp_path / "b").exists()


def test_upgrade_postgres_with_backup(module_main, fake, tmp_path):
    runner = fake()
    result = module_main(mlflow_db.main, args(backup_dir=str(tmp_path / "b"), pg_dump="/usr/bin/pg_dump"))
    assert result["changed"] is True and result["upgraded"] is True
    assert (result["current_revision"], result["revision"], result["backend"]) == (OLD, HEAD, "postgresql")
    assert result["backup_path"].startswith(str(tmp_path / "b" / "mlflow-"))
    assert result["backup_path"].endswith(f"-{OLD}.dump")
    assert runner.modes() == ["probe", "pg_dump", "upgrade"]
    assert runner.calls[2][0][3:] == ["upgrade", "10", OLD]
    for argv, _env in runner.calls:  # the URI and password only ever travel in the environment
        assert not any(SECRET in a or ENCODED in a for a in argv)
    assert runner.calls[0][1] == {m.URI_ENV: PG_URI} and runner.calls[1][1]["PGPASSWORD"] == SECRET
    assert not leaked(result)


def test_fresh_database_gets_the_schema_without_a_backup(module_main, fake, tmp_path):
    runner = fake(current=None)
    result = module_main(mlflow_db.main, args(backup_dir=str(tmp_path / "b")), diff=True)
    assert result["changed"] is True and result["upgraded"] is True and result["backup_path"] is None
    assert result["current_revision"] is None and result["revision"] == HEAD
    assert result["diff"]["before"] == "revision: none (empty database)\n"
    assert runner.modes() == ["probe", "upgrade"] and runner.calls[1][0][3:] == ["upgrade", "10", ""]


def test_upgrade_sqlite_with_backup(module_main, fake, sqlite_store, tmp_path):
    fake()
    result = module_main(mlflow_db.main, args(f"sqlite:///{sqlite_store}", backup_dir=str(tmp_path / "b")))
    assert result["upgraded"] is True and result["backend"] == "sqlite"
    with sqlite3.connect(result["backup_path"]) as conn:
        assert conn.execute("select version_num from alembic_version").fetchone() == (OLD,)


def test_no_backup_when_disabled(module_main, fake, sqlite_store, tmp_path):
    runner = fake()
    result = module_main(
        mlflow_db.main, args(f"sqlite:///{sqlite_store}", backup=False, backup_dir=str(tmp_path / "b"))
    )
    assert result["upgraded"] is True and result["backup_path"] is None and not (tmp_path / "b").exists()
    assert runner.modes() == ["probe", "upgrade"]


# -- failures -------------------------------------------------------------------------------------


def test_newer_store_is_refused_and_untouched(module_main, fake, tmp_path):
    runner = fake(current="ffffffffffff", known=False)
    for state in ("upgraded", "checked"):
        result = module_main(mlflow_db.main, args(state=state, backup_dir=str(tmp_path / "b")))
        assert result["failed"] is True and result["changed"] is False
        assert "is at revision ffffffffffff, which the installed mlflow 3.17.2 does not know" in result["msg"]
        assert "(is the database newer than the installed mlflow?)" in result["msg"]
        assert result["current_revision"] == "ffffffffffff" and result["head_revision"] == HEAD
    assert runner.modes() == ["probe", "probe"] and not (tmp_path / "b").exists()
    assert not leaked(result)


def test_foreign_tables_are_refused(module_main, fake):
    runner = fake(current=None, foreign=["invoices"])
    result = module_main(mlflow_db.main, args())
    assert result["failed"] is True and "not an MLflow store" in result["msg"] and "invoices" in result["msg"]
    assert runner.modes() == ["probe"]


def test_connection_failure_is_scrubbed(module_main, fake):
    error = (
        f"OperationalError: (psycopg2.OperationalError) could not connect to {PG_URI}: "
        f'password authentication failed for user "mlflow" (password {SECRET}, {ENCODED.lower()})'
    )
    fake(connect_error=error)
    result = module_main(mlflow_db.main, args())
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("mlflow_db: cannot read the backend store postgresql+psycopg2://mlflow:********@")
    assert "password authentication failed" in result["msg"]
    assert not leaked(result)


def test_failed_migration_names_the_kept_backup(module_main, fake, tmp_path):
    fake(upgrade_error=f"ProgrammingError: relation jobs already exists ({SECRET})")
    result = module_main(mlflow_db.main, args(backup_dir=str(tmp_path / "b"), pg_dump="/usr/bin/pg_dump"))
    assert result["failed"] is True and result["upgraded"] is False
    assert result["changed"] is True  # the backup file was written
    assert (
        f"migration of postgresql+psycopg2://mlflow:********@127.0.0.1:5432/mlflow from {OLD} to {HEAD}"
        in (result["msg"])
    )
    assert "relation jobs already exists" in result["msg"]
    backups = list((tmp_path / "b").iterdir())
    assert len(backups) == 1 and f"backup taken before it is kept at {backups[0]}" in result["msg"]
    assert result["backup_path"] == str(backups[0])
    assert not leaked(result)


def test_failed_backup_stops_before_migrating(module_main, fake, tmp_path):
    runner = fake(pg_dump_rc=1)
    result = module_main(mlflow_db.main, args(backup_dir=str(tmp_path / "b"), pg_dump="/usr/bin/pg_dump"))
    assert result["failed"] is True and result["changed"] is False
    assert "backup before migrating failed, nothing was migrated" in result["msg"] and "boom" in result["msg"]
    assert runner.modes() == ["probe", "pg_dump"]
    assert list((tmp_path / "b").iterdir()) == []


def test_unwritable_backup_dir_is_reported(module_main, fake, sqlite_store, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    runner = fake()
    result = module_main(mlflow_db.main, args(f"sqlite:///{sqlite_store}", backup_dir=str(blocker / "sub")))
    assert result["failed"] is True and "backup before migrating failed" in result["msg"]
    assert runner.modes() == ["probe"]


# -- integrity_check (SQLite) ---------------------------------------------------------------------


def _corrupt(db, how):
    """A SQLite store (table + index, several pages) broken in one of two ways SQLite tells apart."""
    with sqlite3.connect(db) as conn:
        conn.execute("create table filler (x)")
        conn.execute("create index filler_x on filler (x)")
        conn.executemany("insert into filler values (?)", [(i,) for i in range(2000)])
    page = {"verdict": 4, "malformed": 2}[how]  # a damaged leaf (integrity_check says so) or an interior page
    with open(db, "r+b") as handle:
        handle.seek(4096 * page + 8)
        handle.write(b"\0" * 16)


@pytest.mark.parametrize("how", ["verdict", "malformed"])
@pytest.mark.parametrize("state", ["checked", "upgraded"])
def test_integrity_check_refuses_a_damaged_sqlite_store_before_the_probe(
    module_main, fake, sqlite_store, tmp_path, how, state
):
    _corrupt(sqlite_store, how)
    before = sqlite_store.read_bytes()
    runner = fake()
    uri = f"sqlite:///{sqlite_store}"
    result = module_main(mlflow_db.main, args(uri, state=state, integrity_check=True, backup_dir=str(tmp_path / "b")))
    assert result["failed"] is True and result["changed"] is False
    assert str(sqlite_store) in result["msg"]
    assert ("failed PRAGMA integrity_check" if how == "verdict" else "malformed") in result["msg"]
    assert runner.calls == [] and not (tmp_path / "b").exists()
    assert sqlite_store.read_bytes() == before


def test_integrity_check_passes_an_intact_store_and_is_off_by_default(module_main, fake, sqlite_store):
    runner = fake()
    uri = f"sqlite:///{sqlite_store}"
    checked = module_main(mlflow_db.main, args(uri, state="checked", integrity_check=True))
    assert checked["failed"] is False and checked["current_revision"] == OLD
    _corrupt(sqlite_store, "verdict")
    unchecked = module_main(mlflow_db.main, args(uri, state="checked"))
    assert unchecked["failed"] is False, "integrity_check defaults to false"
    assert runner.modes() == ["probe", "probe"]


def test_integrity_check_ignores_a_missing_file_and_other_backends(module_main, fake, tmp_path):
    runner = fake(current=None)
    missing = module_main(mlflow_db.main, args(f"sqlite:///{tmp_path}/new.db", state="checked", integrity_check=True))
    postgres = module_main(mlflow_db.main, args(state="checked", integrity_check=True))
    assert missing["failed"] is False and postgres["failed"] is False
    assert runner.modes() == ["probe", "probe"] and not (tmp_path / "new.db").exists()
