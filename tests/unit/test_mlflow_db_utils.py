"""Unit tests for mlflow_db's URI handling, backups naming/retention and redaction."""

from __future__ import annotations

import datetime
import sqlite3

import pytest
from ansible_collections.mlops.mlflow.plugins.module_utils import mlflow_db as m
from ansible_collections.mlops.mlflow.plugins.modules import mlflow_db

SECRET = "p@ss:w/rd%"
ENCODED = "p%40ss%3Aw%2Frd%25"
PG_URI = f"postgresql+psycopg2://mlflow:{ENCODED}@db.example:6432/mlflow?sslmode=require"


def test_postgres_uri_parts_and_libpq_env():
    store = m.StoreUri(PG_URI)
    assert (store.backend, store.driver, store.user, store.password) == ("postgresql", "psycopg2", "mlflow", SECRET)
    assert store.pg_env() == {
        "PGHOST": "db.example",
        "PGPORT": "6432",
        "PGUSER": "mlflow",
        "PGPASSWORD": SECRET,
        "PGDATABASE": "mlflow",
        "PGSSLMODE": "require",
    }


def test_redaction_hides_raw_and_encoded_password():
    store = m.StoreUri(PG_URI)
    assert store.redacted == "postgresql+psycopg2://mlflow:********@db.example:6432/mlflow?sslmode=require"
    message = f"could not connect to {PG_URI} as mlflow with password {SECRET} ({ENCODED})"
    scrubbed = store.scrub(message)
    assert SECRET not in scrubbed and ENCODED not in scrubbed
    assert store.redacted in scrubbed


@pytest.mark.parametrize(
    ("uri", "backend", "database"),
    [
        ("sqlite:////var/lib/mlflow/mlflow.db", "sqlite", "/var/lib/mlflow/mlflow.db"),
        ("sqlite:///relative.db", "sqlite", "relative.db"),
        ("mysql+pymysql://u:p@h:3306/mlflow", "mysql", "mlflow"),
        ("postgresql://u@h/mlflow", "postgresql", "mlflow"),
    ],
)
def test_backends(uri, backend, database):
    store = m.StoreUri(uri)
    assert (store.backend, store.database) == (backend, database)
    assert store.redacted == uri or "********" in store.redacted


@pytest.mark.parametrize("uri", ["not a uri", "/var/lib/mlflow.db", "Postgres!://x", "postgresql://u:p@h:notaport/db"])
def test_malformed_uris_fail_clearly(uri):
    with pytest.raises(m.MlflowDbError):
        m.StoreUri(uri).port  # noqa: B018 - the port is parsed lazily for some inputs


def test_backup_name_and_retention(tmp_path):
    stamp = datetime.datetime(2026, 11, 23, 3, 15, 0)
    assert (
        m.backup_name("/var/lib/mlflow/mlflow.db", "abc123", "sqlite", stamp) == "mlflow-20261123T031500Z-abc123.sqlite"
    )
    assert m.backup_name("mlflow", None, "dump", stamp) == "mlflow-20261123T031500Z-empty.dump"
    for day in range(1, 8):
        (tmp_path / f"mlflow-202611{day:02d}T000000Z-r{day}.dump").write_text("x")
    (tmp_path / "other-20261101T000000Z-r.dump").write_text("x")
    removed = m.prune_backups(str(tmp_path), "mlflow", "dump", 3)
    assert len(removed) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mlflow-20261105T000000Z-r5.dump",
        "mlflow-20261106T000000Z-r6.dump",
        "mlflow-20261107T000000Z-r7.dump",
        "other-20261101T000000Z-r.dump",
    ]


def test_sqlite_backup_is_a_private_consistent_copy(tmp_path):
    source = tmp_path / "store.db"
    with sqlite3.connect(source) as conn:
        conn.execute("create table t (x int)")
        conn.execute("insert into t values (7)")
    target = tmp_path / "backup.sqlite"
    m.sqlite_backup(str(source), str(target))
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    with sqlite3.connect(target) as conn:
        assert conn.execute("select x from t").fetchall() == [(7,)]


def test_parse_probe_output_takes_last_json_line():
    assert m.parse_probe_output('noise\n{"a": 1}\nwarning\n{"b": 2}\n') == {"b": 2}
    assert m.parse_probe_output("no json") is None


def test_missing_python_fails_without_leaking_the_password(module_main, tmp_path):
    result = module_main(mlflow_db.main, {"backend_store_uri": PG_URI, "python": str(tmp_path / "nope")})
    assert result["failed"] is True and "does not exist" in result["msg"]
    assert SECRET not in repr(result) and ENCODED not in repr(result)


def test_mysql_backup_is_refused_before_touching_anything(module_main):
    result = module_main(mlflow_db.main, {"backend_store_uri": "mysql+pymysql://u:secretpw@h/mlflow"})
    assert result["failed"] is True and "backup=false" in result["msg"]
    assert "secretpw" not in repr(result)


def test_backup_keep_must_be_positive(module_main):
    result = module_main(mlflow_db.main, {"backend_store_uri": "sqlite:////x.db", "backup_keep": 0})
    assert result["failed"] is True and "backup_keep" in result["msg"]
