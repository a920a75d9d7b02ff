# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)
"""Inspect and migrate an MLflow backend store with the mlflow of a given venv.

The module never imports mlflow itself: Ansible's interpreter is not the mlflow
venv's. It runs PROBE_PROGRAM with the venv's python, hands it the backend URI in
an environment variable (never on a command line, where `ps` would show it) and
reads one JSON line back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import glob
import json
import os
import re
import sqlite3

try:
    from urllib.parse import parse_qs, unquote, urlsplit
except ImportError:  # pragma: no cover - Python 2
    from urllib import unquote  # noqa: F401

    from urlparse import parse_qs, urlsplit  # noqa: F401

URI_ENV = "MLOPS_MLFLOW_DB_URI"
REDACTED = "********"

PROBE_PROGRAM = r"""
import json, os, sys
mode, timeout = sys.argv[1], int(sys.argv[2])
out = {}
try:
    import mlflow
    import sqlalchemy as sa
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    import mlflow.store.db_migrations as migrations
    from mlflow.store.db import utils as db_utils

    out["mlflow_version"] = mlflow.__version__
    config = Config()
    config.set_main_option("script_location", os.path.dirname(migrations.__file__))
    script = ScriptDirectory.from_config(config)
    out["head_revision"] = script.get_current_head()
    known = set(rev.revision for rev in script.walk_revisions())
    uri = os.environ["MLOPS_MLFLOW_DB_URI"]
    backend = uri.split(":", 1)[0].split("+", 1)[0]
    connect_args = {"timeout": timeout} if backend == "sqlite" else {"connect_timeout": timeout}
    sqlite_path = uri.split(":///", 1)[1] if backend == "sqlite" and ":///" in uri else ""
    engine = sa.create_engine(uri, connect_args=connect_args, poolclass=sa.pool.NullPool)

    def current_revision():
        if sqlite_path and not os.path.exists(sqlite_path):
            return None, []  # a probe must not create the file
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            tables = inspector.get_table_names()
            if "alembic_version" not in tables:
                return None, tables
            rev = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            return rev, tables

    current, tables = current_revision()
    out["current_revision"] = current
    out["known_revision"] = current is None or current in known
    out["empty"] = current is None and not tables
    if mode == "upgrade":
        if sqlite_path:
            parent = os.path.dirname(os.path.abspath(sqlite_path))
            if not os.path.isdir(parent):
                os.makedirs(parent)
        if current is None:
            db_utils._initialize_tables(engine)
        else:
            db_utils._upgrade_db(engine)
        out["revision"] = current_revision()[0]
    print(json.dumps(out))
except Exception as exc:
    out["error"] = "%s: %s" % (type(exc).__name__, exc)
    print(json.dumps(out))
    sys.exit(1)
"""


class MlflowDbError(Exception):
    """A failure to report as the module's one failure message (already scrubbed)."""

    def __init__(self, msg, **details):
        super(MlflowDbError, self).__init__(msg)
        self.details = details


class StoreUri:
    """The parts of a SQLAlchemy backend store URI, and its redacted form."""

    def __init__(self, uri):
        self.uri = uri
        scheme, sep, rest = uri.partition("://")
        if not sep or not re.match(r"^[a-z0-9]+(\+[a-z0-9_]+)?$", scheme):
            raise MlflowDbError(
                "backend_store_uri must look like dialect[+driver]://..., e.g. sqlite:////var/lib/mlflow/mlflow.db"
            )
        self.dialect, _plus, self.driver = scheme.partition("+")
        self.backend = {"postgres": "postgresql", "mssql": "mssql"}.get(self.dialect, self.dialect)
        if self.backend == "sqlite":
            self.user = self.password = self.host = self.port = None
            self.database = rest[1:] if rest.startswith("/") else rest
            self.query = {}
            return
        parts = urlsplit(uri)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.host = parts.hostname
        try:
            self.port = parts.port
        except ValueError:
            raise MlflowDbError("backend_store_uri has an invalid port") from None
        self.database = unquote(parts.path.lstrip("/")) or None
        self.query = dict((key, values[-1]) for key, values in parse_qs(parts.query).items())

    @property
    def redacted(self):
        if not self.password:
            return self.uri
        scheme, _sep, rest = self.uri.partition("://")
        userinfo, _at, hostpart = rest.rpartition("@")
        user = userinfo.split(":", 1)[0]
        return "%s://%s:%s@%s" % (scheme, user, REDACTED, hostpart)

    def secrets(self):
        """Strings that must never appear in output."""
        found = [self.uri]
        if self.password:
            found.append(self.password)
            rest = self.uri.partition("://")[2]
            found.append(rest.rpartition("@")[0].split(":", 1)[-1])  # the encoded password
        return [item for item in found if item]

    def scrub(self, text):
        text = "" if text is None else str(text)
        for secret in sorted(self.secrets(), key=len, reverse=True):
            text = text.replace(secret, self.redacted if secret == self.uri else REDACTED)
        return text

    def pg_env(self):
        """libpq environment for pg_dump: the password never goes on a command line."""
        env = {}
        for key, value in (
            ("PGHOST", self.host),
            ("PGPORT", self.port),
            ("PGUSER", self.user),
            ("PGPASSWORD", self.password),
            ("PGDATABASE", self.database),
        ):
            if value is not None:
                env[key] = str(value)
        for param, key in (
            ("sslmode", "PGSSLMODE"),
            ("sslrootcert", "PGSSLROOTCERT"),
            ("sslcert", "PGSSLCERT"),
            ("sslkey", "PGSSLKEY"),
        ):
            if param in self.query:
                env[key] = self.query[param]
        return env


def backup_name(database, revision, suffix, now=None):
    now = now or datetime.datetime.utcnow()
    base = os.path.basename(database or "mlflow")
    base = re.sub(r"\.(db|sqlite3?)$", "", base)
    base = re.sub(r"[^A-Za-z0-9_.-]", "_", base) or "mlflow"
    return "%s-%s-%s.%s" % (base, now.strftime("%Y%m%dT%H%M%SZ"), revision or "empty", suffix)


def prune_backups(directory, database, suffix, keep):
    """Delete the oldest backups of `database` beyond `keep`; return the removed paths."""
    base = re.sub(r"\.(db|sqlite3?)$", "", os.path.basename(database or "mlflow"))
    pattern = os.path.join(directory, "%s-*.%s" % (glob.escape(base), suffix))
    backups = sorted(glob.glob(pattern), key=os.path.basename, reverse=True)
    removed = backups[keep:]
    for path in removed:
        os.unlink(path)
    return removed


def ensure_private_dir(directory):
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    os.chmod(directory, 0o700)


def sqlite_backup(source, destination):
    """Copy a live SQLite database with the online backup API."""
    if not os.path.exists(source):
        raise MlflowDbError("SQLite database %s does not exist" % source)
    old_umask = os.umask(0o077)
    try:
        src = sqlite3.connect("file:%s?mode=ro" % source, uri=True)
        try:
            dst = sqlite3.connect(destination)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
    finally:
        os.umask(old_umask)
    os.chmod(destination, 0o600)


def parse_probe_output(stdout):
    """Return the last JSON object line of the probe's output."""
    for line in reversed((stdout or "").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None
