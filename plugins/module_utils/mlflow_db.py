# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)
"""Inspect, back up and migrate an MLflow backend store with the mlflow of a given venv.

The module never imports mlflow itself: Ansible's interpreter is not the mlflow
venv's. It runs PROBE_PROGRAM with the venv's python, hands it the backend URI in
an environment variable (never on a command line, where `ps` would show it) and
reads one marked JSON line back.

Everything here raises MlflowDbError with messages that are already scrubbed of the
store's password; callers add nothing that has not gone through StoreUri.scrub().
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import re
import sqlite3

try:
    from urllib.parse import parse_qsl, quote, quote_plus, unquote
    from urllib.request import pathname2url
except ImportError:  # pragma: no cover - Python 2
    from urllib import pathname2url, quote, quote_plus, unquote  # noqa: F401

    from urlparse import parse_qsl  # noqa: F401

URI_ENV = "MLOPS_MLFLOW_DB_URI"
RESULT_MARKER = "MLOPS_MLFLOW_DB_RESULT "
REDACTED = "********"
SUPPORTED_BACKUPS = ("postgresql", "sqlite")
# A MySQL/MariaDB store is backed up only with a dump program named (mariadb-dump or mysqldump).
DUMPED_BACKUPS = ("mysql",)

# Runs with the mlflow venv's python: argv = mode (probe|upgrade), timeout, expected
# current revision (upgrade only; "" for a fresh store). The URI comes from URI_ENV.
# It prints one line: RESULT_MARKER + JSON, with "stage" telling where it stopped.
PROBE_PROGRAM = r"""
import ast, json, os, re, sys

MARKER = "MLOPS_MLFLOW_DB_RESULT "
mode, timeout = sys.argv[1], int(sys.argv[2])
expected = sys.argv[3] if len(sys.argv) > 3 else ""
out = {"stage": "import"}


def emit(code):
    sys.stdout.write(MARKER + json.dumps(out) + "\n")
    sys.stdout.flush()
    sys.exit(code)


def read_revision_graph():
    # The migration graph read from the scripts' text, without importing mlflow (seconds on a small
    # host; the scripts import mlflow's models). Returns (head, known) or None when a script is
    # not the plain `revision = "..."` / `down_revision = ...` shape, or the graph has not one head:
    # then alembic loads the scripts itself.
    import importlib.util
    spec = importlib.util.find_spec("mlflow")
    if spec is None or not spec.submodule_search_locations:
        return None
    versions = os.path.join(list(spec.submodule_search_locations)[0], "store", "db_migrations", "versions")
    known, downs = set(), set()
    for name in sorted(os.listdir(versions)):
        if not name.endswith(".py") or name.startswith("_"):
            continue
        with open(os.path.join(versions, name)) as handle:
            tree = ast.parse(handle.read())
        values = {}
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                        try:
                            values[target.id] = ast.literal_eval(node.value)
                        except ValueError:
                            return None
        revision, down = values.get("revision"), values.get("down_revision")
        if not isinstance(revision, str) or "down_revision" not in values:
            return None
        known.add(revision)
        downs.update([down] if isinstance(down, str) else list(down or ()))
    heads = known - downs
    if len(heads) != 1 or not downs <= known:
        return None
    return heads.pop(), known


try:
    uri = os.environ.pop("MLOPS_MLFLOW_DB_URI")
    import sqlalchemy as sa
    from alembic.migration import MigrationContext

    # A probe only reads alembic_version and the table names: no mlflow import unless it must.
    graph = read_revision_graph() if mode == "probe" else None
    if graph is None:
        import mlflow
        from alembic.script import ScriptDirectory
        from mlflow.store.db import utils as db_utils

        out["mlflow_version"] = mlflow.__version__
        script = ScriptDirectory.from_config(db_utils._get_alembic_config(""))
        heads = script.get_heads()
        if len(heads) != 1:
            raise RuntimeError("the installed mlflow has %d migration heads: %s" % (len(heads), heads))
        out["head_revision"] = heads[0]
        known = set(rev.revision for rev in script.walk_revisions())
    else:
        import importlib.metadata

        db_utils = None
        out["mlflow_version"] = importlib.metadata.version("mlflow")
        out["head_revision"], known = graph

    def initial_tables():
        # The tables the first migration starts from (what _initialize_tables creates first).
        from mlflow.store.db import utils as mlflow_db_utils

        base = getattr(mlflow_db_utils, "InitialBase", None)
        if base is None:
            from mlflow.store.tracking.dbmodels.initial_models import Base as base
        return base.metadata.tables

    out["stage"] = "connect"
    url = sa.engine.make_url(uri)
    backend = url.get_backend_name()
    driver = url.get_driver_name()
    if backend == "sqlite" and not os.path.exists(url.database or ""):
        if mode == "probe":  # a probe must not create the file
            out.update(current_revision=None, known_revision=True, empty=True, foreign_tables=[])
            emit(0)
        db_utils._make_parent_dirs_if_sqlite(uri)

    if db_utils is not None:
        # The engine mlflow itself builds (SQLite functions, MySQL SSL, pool settings from the
        # MLFLOW_SQLALCHEMYSTORE_* environment), plus our connect and lock timeouts.
        engine = db_utils.create_sqlalchemy_engine(uri)
    else:
        # Reading two things needs no pool; MySQL's TLS files come from the variables mlflow reads.
        ssl = {key: os.environ.get("MLFLOW_MYSQL_SSL_" + key[4:].upper()) for key in ("ssl_ca", "ssl_cert", "ssl_key")}
        ssl = dict((key, value) for key, value in ssl.items() if value) if backend == "mysql" else {}
        engine = sa.create_engine(uri, poolclass=sa.pool.NullPool, connect_args=ssl)

    @sa.event.listens_for(engine, "do_connect")
    def _connect_timeout(dialect, conn_rec, cargs, cparams):
        if backend == "sqlite":
            cparams.setdefault("timeout", timeout)
        elif backend == "postgresql" and driver in ("psycopg2", "psycopg"):
            cparams.setdefault("connect_timeout", timeout)
        elif backend == "postgresql" and driver == "pg8000":
            cparams.setdefault("timeout", timeout)
        elif backend in ("mysql", "mariadb"):
            cparams.setdefault("connect_timeout", timeout)

    if backend == "postgresql":

        @sa.event.listens_for(engine, "connect")
        def _lock_timeout(dbapi_conn, conn_rec):
            # A migration blocked by a running server fails (and rolls back) instead of hanging.
            cursor = dbapi_conn.cursor()
            cursor.execute("SET lock_timeout = %d" % (timeout * 1000))
            cursor.close()
            dbapi_conn.commit()

    def read_state():
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            revisions = MigrationContext.configure(conn).get_current_heads()
        if len(revisions) > 1:
            raise RuntimeError("alembic_version holds several revisions: %s" % ", ".join(revisions))
        current = revisions[0] if revisions else None
        other = sorted(t for t in tables if not t.startswith("alembic_"))
        foreign = [t for t in other if t not in initial_tables()] if current is None and other else []
        return current, other, foreign

    current, other, foreign = read_state()
    out.update(
        current_revision=current,
        known_revision=current is None or current in known,
        empty=not other,
        foreign_tables=foreign[:10],
    )
    if mode == "upgrade":
        out["stage"] = "upgrade"
        if (current or "") != expected:
            raise RuntimeError("the store moved to revision %s since it was probed; run again" % current)
        if not out["known_revision"] or foreign:
            raise RuntimeError("refusing to migrate a store the probe would have refused")
        if current is None:
            # What `mlflow db upgrade` and SqlAlchemyStore do for a fresh database:
            # the initial tables, then every migration.
            db_utils._initialize_tables(engine)
        else:
            db_utils._upgrade_db(engine)
        out["revision"] = read_state()[0]
    engine.dispose()
    emit(0)
except SystemExit:
    raise
except BaseException as exc:
    # One line: no SQLAlchemy "Background" link, no bound parameters (row data), SQL collapsed.
    text = str(exc).split("(Background on this error at:")[0]
    text = re.sub(r"\[parameters: .*?\]\s*$", "", text.strip(), flags=re.S)
    text = re.sub(r"\s+", " ", text).strip()
    out["error"] = ("%s: %s" % (type(exc).__name__, text))[:3000]
    emit(1)
"""

# Same shape as SQLAlchemy's URL pattern, so we split a URI where mlflow's engine will.
_URI_RE = re.compile(
    r"""
    ^(?P<scheme>[\w+]+)://
    (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?:\[(?P<ipv6host>[^/?]+)\]|(?P<ipv4host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?$
    """,
    re.VERBOSE | re.DOTALL,
)

# libpq connection parameters a SQLAlchemy URI may carry in its query, and their PG* variables.
_LIBPQ_QUERY_ENV = (
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("dbname", "PGDATABASE"),
    ("user", "PGUSER"),
    ("password", "PGPASSWORD"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("sslcrl", "PGSSLCRL"),
    ("application_name", "PGAPPNAME"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
)


class MlflowDbError(Exception):
    """A failure to report as the module's one failure message (already scrubbed).

    `details` are result fields known so far (revisions, backup_path, ...).
    """

    def __init__(self, msg, **details):
        super(MlflowDbError, self).__init__(msg)
        self.details = details


class StoreUri:
    """The parts of a SQLAlchemy backend store URI, its redacted form and its libpq env."""

    def __init__(self, uri):
        self.uri = uri
        match = _URI_RE.match(uri or "")
        if not match:
            raise MlflowDbError(
                "backend_store_uri must look like dialect[+driver]://..., e.g. "
                "postgresql+psycopg2://mlflow:PASSWORD@db.example:5432/mlflow or sqlite:////var/lib/mlflow/mlflow.db"
            )
        self.scheme = match.group("scheme")
        self.dialect, _plus, self.driver = self.scheme.partition("+")
        self.driver = self.driver or None
        self.backend = {"postgres": "postgresql", "mariadb": "mysql"}.get(self.dialect, self.dialect)
        self._raw_password = match.group("password")
        self.user = unquote(match.group("username")) if match.group("username") else None
        self.password = unquote(self._raw_password) if self._raw_password else None
        self.host = match.group("ipv6host") or match.group("ipv4host")
        self.query = dict(parse_qsl(match.group("query") or "", keep_blank_values=True))
        if self.password is None and self.query.get("password"):
            self.password = self.query["password"]
        port = match.group("port")
        if port:
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise MlflowDbError("backend_store_uri has an invalid port")
            self.port = int(port)
        else:
            self.port = None
        database = match.group("database")
        if self.backend == "sqlite":
            # sqlite:////abs/path.db -> database "/abs/path.db"; "sqlite://" is in-memory.
            if not database or database == ":memory:" or not database.startswith("/"):
                raise MlflowDbError(
                    "a SQLite backend_store_uri needs an absolute path: sqlite:////var/lib/mlflow/mlflow.db "
                    "(four slashes); relative and in-memory stores are not supported"
                )
            self.database = database
        else:
            self.database = unquote(database) if database else None

    @property
    def redacted(self):
        """The URI with the password (in the user info or the query) replaced by ********."""
        text = self.uri
        if self._raw_password:
            match = _URI_RE.match(text)
            start, end = match.span("password")
            text = text[:start] + REDACTED + text[end:]
        if "password" in self.query:
            text = re.sub(r"([?&]password=)[^&]*", r"\g<1>" + REDACTED, text)
        return text

    def secrets(self):
        """Strings that must never appear in output, longest first."""
        found = set([self.uri])
        for value in (self._raw_password, self.password):
            if value:
                found.update([value, quote(value, safe=""), quote_plus(value, safe="")])
        return sorted((item for item in found if item), key=len, reverse=True)

    def scrub(self, text):
        """Return `text` (any object) as a string with the URI redacted and the password masked."""
        text = "" if text is None else str(text)
        for secret in self.secrets():
            # Case-insensitive: percent-encodings may come back as %2f instead of %2F.
            replacement = self.redacted if secret == self.uri else REDACTED
            text = re.sub(re.escape(secret), lambda _match, new=replacement: new, text, flags=re.IGNORECASE)
        return text

    def pg_env(self, timeout=None):
        """libpq environment for pg_dump: the password never goes on a command line."""
        env = {}
        for key, value in (
            ("PGHOST", self.host),
            ("PGPORT", self.port),
            ("PGUSER", self.user),
            ("PGPASSWORD", self.password),
            ("PGDATABASE", self.database),
            ("PGCONNECT_TIMEOUT", timeout),
        ):
            if value is not None:
                env[key] = str(value)
        for param, key in _LIBPQ_QUERY_ENV:
            if param in self.query and key not in env:
                env[key] = self.query[param]
        return env

    def mysql_dump_args(self):
        """mariadb-dump/mysqldump options for this store (the password goes in mysql_env).

        Neither program takes a connect timeout option: the module's run waits for the dump.
        """
        args = ["--single-transaction", "--no-tablespaces", "--protocol=TCP"]
        for option, value in (
            ("--host", self.host or "127.0.0.1"),
            ("--port", self.port or 3306),
            ("--user", self.user),
        ):
            if value is not None:
                args.append("%s=%s" % (option, value))
        return args

    def mysql_env(self):
        """The client's environment: the password never goes on a command line."""
        return {"MYSQL_PWD": self.password} if self.password is not None else {}


def _backup_base(database):
    base = os.path.basename(database or "") or "mlflow"
    base = re.sub(r"\.(db|sqlite3?)$", "", base)
    return re.sub(r"[^A-Za-z0-9_.]", "_", base) or "mlflow"


def backup_name(database, revision, suffix, now=None):
    """`<db name>-<UTC timestamp>-<from revision>.<suffix>`, e.g. mlflow-20261123T031500Z-0584bdc529eb.dump."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return "%s-%s-%s.%s" % (_backup_base(database), now.strftime("%Y%m%dT%H%M%SZ"), revision or "empty", suffix)


def list_backups(directory, database, suffix):
    """Backups this module made of `database` in `directory`, newest first."""
    pattern = re.compile(
        r"^%s-\d{8}T\d{6}Z-[A-Za-z0-9_]+\.%s$" % (re.escape(_backup_base(database)), re.escape(suffix))
    )
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [os.path.join(directory, name) for name in sorted((n for n in names if pattern.match(n)), reverse=True)]


def prune_backups(directory, database, suffix, keep):
    """Delete the oldest backups of `database` beyond the newest `keep`; return the removed paths."""
    removed = list_backups(directory, database, suffix)[keep:]
    for path in removed:
        os.unlink(path)
    return removed


def ensure_private_dir(directory):
    """Create `directory` (and parents) if needed and make it 0700."""
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    os.chmod(directory, 0o700)


def sqlite_backup(source, destination):
    """Copy a live SQLite database with the online backup API into a new 0600 file."""
    if not os.path.exists(source):
        raise MlflowDbError("SQLite database %s does not exist" % source)
    old_umask = os.umask(0o077)
    try:
        src = sqlite3.connect("file:%s?mode=ro" % pathname2url(source), uri=True)
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


def sqlite_integrity(store):
    """Run PRAGMA integrity_check on a SQLite store, read-only; raise MlflowDbError unless it says ok.

    A missing file passes: the probe reports it as a fresh store.
    """
    if store.backend != "sqlite" or not os.path.exists(store.database):
        return
    try:
        conn = sqlite3.connect("file:%s?mode=ro" % pathname2url(store.database), uri=True)
        try:
            verdict = "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise MlflowDbError("SQLite store %s cannot be checked: %s" % (store.database, exc)) from None
    if verdict != "ok":
        raise MlflowDbError("SQLite store %s failed PRAGMA integrity_check: %s" % (store.database, verdict[:1000]))


def parse_probe_output(stdout):
    """Return the probe's marked JSON result (the last one), or None."""
    for line in reversed((stdout or "").splitlines()):
        if line.startswith(RESULT_MARKER):
            try:
                return json.loads(line[len(RESULT_MARKER) :])
            except ValueError:
                return None
    return None


def _last_line(text):
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def run_probe(run_command, python, store, mode, timeout, expected=None):
    """Run PROBE_PROGRAM with `python` (`run_command` is AnsibleModule.run_command).

    Returns the probe's JSON. Raises MlflowDbError naming the stage that failed.
    """
    if not os.path.isfile(python) or not os.access(python, os.X_OK):
        raise MlflowDbError("python %s does not exist or is not executable (is the mlflow venv installed?)" % python)
    argv = [python, "-c", PROBE_PROGRAM, mode, str(timeout)]
    if mode == "upgrade":
        argv.append(expected or "")
    rc, stdout, stderr = run_command(argv, environ_update={URI_ENV: store.uri})
    data = parse_probe_output(stdout)
    if rc == 0 and data is not None and "error" not in data:
        return data
    data = data or {"stage": "import"}
    reason = store.scrub(data.get("error") or _last_line(stderr))
    fields = dict((k, v) for k, v in data.items() if k in ("mlflow_version", "head_revision", "current_revision"))
    stage = data.get("stage")
    if stage == "import":
        msg = "cannot use mlflow with %s: %s" % (python, reason)
    elif stage == "connect":
        msg = "cannot read the backend store %s: %s" % (store.redacted, reason)
    else:
        msg = "migration of %s from %s to %s failed: %s" % (
            store.redacted,
            expected or "an empty database",
            data.get("head_revision"),
            reason,
        )
    raise MlflowDbError(msg, **fields)


def build_result(store, probe):
    """Turn a probe into the module's result fields; refuse stores that must not be touched."""
    current, head = probe.get("current_revision"), probe.get("head_revision")
    result = dict(
        changed=False,
        upgraded=False,
        backup_path=None,
        backend=store.backend,
        mlflow_version=probe.get("mlflow_version"),
        current_revision=current,
        head_revision=head,
        revision=current,
        upgrade_needed=current != head,
    )
    if not probe.get("known_revision", True):
        raise MlflowDbError(
            "backend store %s is at revision %s, which the installed mlflow %s does not know "
            "(is the database newer than the installed mlflow?)"
            % (store.redacted, current, probe.get("mlflow_version")),
            **result,
        )
    if current is None and probe.get("foreign_tables"):
        raise MlflowDbError(
            "backend store %s has tables but no alembic revision (%s): not an MLflow store, not touching it"
            % (store.redacted, ", ".join(probe["foreign_tables"])),
            **result,
        )
    return result


def revision_diff(current, head):
    return dict(
        before="revision: %s\n" % (current or "none (empty database)"),
        after="revision: %s\n" % head,
    )


def check_backup_supported(store, mysqldump=None):
    if store.backend in DUMPED_BACKUPS and mysqldump:
        return
    if store.backend in DUMPED_BACKUPS:
        raise MlflowDbError(
            "backup of %s stores needs mysqldump (the path of mariadb-dump or mysqldump); or set backup=false "
            "(and back the database up yourself)" % store.backend
        )
    if store.backend not in SUPPORTED_BACKUPS:
        raise MlflowDbError(
            "backup of %s stores is not supported yet; set backup=false (and back the database up yourself)"
            % store.backend
        )


def make_backup(
    store, directory, revision, keep, run_command, atomic_move, pg_dump=None, timeout=None, now=None, mysqldump=None
):
    """Back the store up into `directory` before migrating from `revision`; return the path.

    The dump is written to a hidden temp file in the same directory and moved into place,
    so a failed dump never leaves a file that looks like a backup. Old backups of the same
    database beyond the newest `keep` are removed afterwards.
    """
    check_backup_supported(store, mysqldump)
    suffix = {"sqlite": "sqlite", "mysql": "sql"}.get(store.backend, "dump")
    ensure_private_dir(directory)
    name = backup_name(store.database, revision, suffix, now)
    path = os.path.join(directory, name)
    if os.path.exists(path):
        raise MlflowDbError("backup %s already exists; not overwriting it" % path)
    partial = os.path.join(directory, ".%s.partial" % name)
    old_umask = os.umask(0o077)
    try:
        if store.backend == "sqlite":
            try:
                sqlite_backup(store.database, partial)
            except sqlite3.Error as exc:
                raise MlflowDbError("backup of %s to %s failed: %s" % (store.database, path, exc)) from None
        elif store.backend == "mysql":
            rc, _out, stderr = run_command(
                [mysqldump] + store.mysql_dump_args() + ["--result-file=%s" % partial, store.database],
                environ_update=store.mysql_env(),
            )
            if rc != 0:
                raise MlflowDbError(
                    "%s of %s failed (rc=%s): %s"
                    % (os.path.basename(mysqldump), store.redacted, rc, store.scrub(stderr.strip()))
                )
        else:
            if not pg_dump:
                raise MlflowDbError("pg_dump was not found; install postgresql-client or set pg_dump")
            rc, _out, stderr = run_command(
                [pg_dump, "--format=custom", "--no-password", "--file", partial],
                environ_update=store.pg_env(timeout),
            )
            if rc != 0:
                raise MlflowDbError(
                    "pg_dump of %s failed (rc=%s): %s" % (store.redacted, rc, store.scrub(stderr.strip()))
                )
        atomic_move(partial, path)
        os.chmod(path, 0o600)
    finally:
        os.umask(old_umask)
        if os.path.exists(partial):
            os.unlink(partial)
    prune_backups(directory, store.database, suffix, keep)
    return path
