#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: mlflow_db
short_description: Bring an MLflow backend store schema to the installed mlflow, with a backup first
version_added: "0.1.0"
description:
  - Reads the store's current alembic revision and the head revision of the mlflow installed in a venv,
    and migrates the store to that head only when they differ (C(changed=true) only then).
    A fresh empty database gets the full schema.
  - Run it before the mlflow server (re)starts. mlflow 3.x opening an older store migrates it on the
    spot with no backup; this module is where the backup happens.
  - Before migrating an existing store it takes a backup (C(pg_dump -Fc) for PostgreSQL, the SQLite online
    backup API for SQLite) and keeps the newest O(backup_keep) backups of that database.
  - The module does not import mlflow; it runs a small program with O(python), hands it the backend URI in
    an environment variable (never on a command line) and uses mlflow's own migration code.
  - Every message and returned value carries the URI with its password redacted.
author:
  - mlops.mlflow maintainers (@mlops-mlflow)
options:
  backend_store_uri:
    description:
      - SQLAlchemy URI of the backend store, as given to C(mlflow server --backend-store-uri).
      - For example C(postgresql+psycopg2://mlflow:PASSWORD@127.0.0.1:5432/mlflow) (URL-encode the password)
        or C(sqlite:////var/lib/mlflow/mlflow.db) (an absolute path).
    type: str
    required: true
  python:
    description:
      - Interpreter of the venv that holds the mlflow the server runs (and the database driver).
    type: path
    default: /opt/mlflow/venv/bin/python
  state:
    description:
      - V(upgraded) migrates the store to the head revision of the installed mlflow.
      - V(checked) only reports (RV(upgrade_needed)), never migrates and never reports a change.
    type: str
    choices: [upgraded, checked]
    default: upgraded
  backup:
    description:
      - Back the store up before a migration. No backup is taken when nothing is migrated, in check mode,
        or for a fresh empty database.
      - Supported for PostgreSQL and SQLite, and for MySQL/MariaDB with O(mysqldump). For other backends set V(false)
        and back up yourself.
    type: bool
    default: true
  backup_dir:
    description:
      - Directory for backups; created if missing and set to mode C(0700). Backups are C(0600) files named
        C(<database>-<UTC timestamp>-<from revision>.dump) (PostgreSQL), C(.sql) (MySQL/MariaDB) or C(.sqlite) (SQLite).
    type: path
    default: /var/backups/mlflow
  backup_keep:
    description:
      - Number of newest backups of this database (made by this module, in O(backup_dir)) to keep;
        older ones are removed after a new backup.
    type: int
    default: 5
  pg_dump:
    description:
      - Path of C(pg_dump) for PostgreSQL backups; found on C(PATH) when not set.
      - Its major version must not be older than the server's.
    type: path
  mysqldump:
    description:
      - Path of C(mariadb-dump) or C(mysqldump) for MySQL/MariaDB backups (C(--single-transaction), over TCP, the
        password in C(MYSQL_PWD)). Without it a MySQL store is not backed up and O(backup=true) fails.
    type: path
  integrity_check:
    description:
      - For a SQLite store, run C(PRAGMA integrity_check) (read-only) before reading its revision, and fail
        unless it answers C(ok). Ignored for other backends and for a SQLite file that does not exist.
      - It reads the whole file, so it is off by default; the restore playbook checks a backup with it.
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait for a database connection (probe, backup and migration; a MySQL dump has no such limit).
      - On PostgreSQL also the C(lock_timeout) of the migration, so a migration blocked by a running mlflow
        server fails and rolls back instead of waiting; on SQLite the busy timeout.
    type: int
    default: 10
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports whether an upgrade would run, from which revision to which; touches nothing.
  diff_mode:
    support: full
    details: Shows the revision before and after when it would change.
  platform:
    support: full
    platforms: posix
notes:
  - A store at a revision the installed mlflow does not know (a newer mlflow wrote it) fails and is never touched.
  - A database that has tables but no alembic revision is not treated as an MLflow store and is never touched.
  - When a migration fails after a backup, the failure message names the backup, which is kept.
requirements:
  - mlflow, SQLAlchemy and the database driver in the venv of O(python)
  - C(pg_dump) on the target for PostgreSQL backups, C(mariadb-dump) or C(mysqldump) for MySQL/MariaDB backups
"""

EXAMPLES = r"""
- name: Bring the store to the installed mlflow before (re)starting the server
  mlops.mlflow.mlflow_db:
    backend_store_uri: "postgresql+psycopg2://mlflow:{{ vault_mlflow_db_password | urlencode }}@127.0.0.1:5432/mlflow"
    python: /opt/mlflow/venv/bin/python
    backup_dir: /var/backups/mlflow
  notify: Restart mlflow

- name: Only find out whether an upgrade is due
  mlops.mlflow.mlflow_db:
    backend_store_uri: sqlite:////var/lib/mlflow/mlflow.db
    state: checked
  register: mlflow_schema

- name: Check that a SQLite copy is intact and an MLflow store this mlflow knows
  mlops.mlflow.mlflow_db:
    backend_store_uri: sqlite:////var/lib/mlflow/.mlflow.db.restore
    state: checked
    integrity_check: true
  register: mlflow_copy

- name: MySQL or MariaDB store, dumped first with mariadb-dump (Debian's mariadb-client)
  mlops.mlflow.mlflow_db:
    backend_store_uri: "mysql+pymysql://mlflow:{{ vault_mlflow_db_password | urlencode }}@db.example:3306/mlflow"
    mysqldump: /usr/bin/mariadb-dump
"""

RETURN = r"""
backend:
  description: Kind of store (C(postgresql), C(sqlite), C(mysql), ...).
  returned: when the URI could be parsed
  type: str
  sample: postgresql
mlflow_version:
  description: Version of the mlflow in the venv of O(python).
  returned: when mlflow could be imported
  type: str
  sample: 3.17.2
current_revision:
  description: Alembic revision of the store before the run; null for a fresh database.
  returned: when the store could be read
  type: str
  sample: 0584bdc529eb
head_revision:
  description: Newest revision the installed mlflow knows.
  returned: when mlflow could be imported
  type: str
  sample: dc11669786a5
revision:
  description: Revision of the store after the run (the current revision in check mode and with O(state=checked)).
  returned: when the store could be read
  type: str
  sample: dc11669786a5
upgrade_needed:
  description: Whether the store is behind the installed mlflow.
  returned: when the store could be read
  type: bool
  sample: true
upgraded:
  description: Whether a migration ran.
  returned: always
  type: bool
  sample: true
backup_path:
  description: Backup written before the migration, or null when none was taken.
  returned: always
  type: str
  sample: /var/backups/mlflow/mlflow-20261123T031500Z-0584bdc529eb.dump
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.mlops.mlflow.plugins.module_utils.mlflow_db import (
    MlflowDbError,
    StoreUri,
    build_result,
    check_backup_supported,
    make_backup,
    revision_diff,
    run_probe,
    sqlite_integrity,
)


def _validate(params):
    if params["backup_keep"] < 1:
        raise MlflowDbError("backup_keep must be at least 1")
    if params["timeout"] < 1:
        raise MlflowDbError("timeout must be at least 1 second")


def run(module):
    """Probe, decide, back up, migrate. Raises MlflowDbError (scrubbed) on any failure."""
    params = module.params
    _validate(params)
    store = StoreUri(params["backend_store_uri"])
    if params["backup"] and params["state"] == "upgraded":
        check_backup_supported(store, params["mysqldump"])  # before touching anything, also in check mode

    if params["integrity_check"]:
        sqlite_integrity(store)
    probe = run_probe(module.run_command, params["python"], store, "probe", params["timeout"])
    result = build_result(store, probe)
    current, head = result["current_revision"], result["head_revision"]
    if params["state"] == "checked" or not result["upgrade_needed"]:
        return result

    result["changed"] = True
    if module._diff:
        result["diff"] = revision_diff(current, head)
    if module.check_mode:
        return result

    if params["backup"] and current is not None:
        pg_dump = params["pg_dump"] or (module.get_bin_path("pg_dump") if store.backend == "postgresql" else None)
        try:
            result["backup_path"] = make_backup(
                store,
                params["backup_dir"],
                current,
                params["backup_keep"],
                module.run_command,
                module.atomic_move,
                pg_dump=pg_dump,
                timeout=params["timeout"],
                mysqldump=params["mysqldump"],
            )
        except (OSError, MlflowDbError) as exc:
            details = dict(result)
            details["changed"] = False
            raise MlflowDbError(
                "backup before migrating failed, nothing was migrated: %s" % store.scrub(to_native(exc)), **details
            ) from None
    try:
        migrated = run_probe(module.run_command, params["python"], store, "upgrade", params["timeout"], current)
    except MlflowDbError as exc:
        kept = "; the backup taken before it is kept at %s" % result["backup_path"] if result["backup_path"] else ""
        raise MlflowDbError("%s%s" % (exc, kept), **result) from None
    result.update(upgraded=True, revision=migrated.get("revision"))
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            backend_store_uri=dict(type="str", required=True, no_log=True),
            python=dict(type="path", default="/opt/mlflow/venv/bin/python"),
            state=dict(type="str", choices=["upgraded", "checked"], default="upgraded"),
            backup=dict(type="bool", default=True),
            backup_dir=dict(type="path", default="/var/backups/mlflow"),
            backup_keep=dict(type="int", default=5),
            pg_dump=dict(type="path"),
            mysqldump=dict(type="path"),
            integrity_check=dict(type="bool", default=False),
            timeout=dict(type="int", default=10),
        ),
        supports_check_mode=True,
    )
    try:
        result = run(module)
    except (MlflowDbError, OSError) as exc:
        details = dict(getattr(exc, "details", {}))
        if not isinstance(exc, MlflowDbError):
            # Not raised by our code, so not scrubbed yet.
            try:
                message = StoreUri(module.params["backend_store_uri"]).scrub(to_native(exc))
            except MlflowDbError:
                message = type(exc).__name__
        else:
            message = to_native(exc)
        # A failed migration after a backup reports changed=true: the backup file was written.
        details.setdefault("changed", False)
        details.setdefault("upgraded", False)
        module.fail_json(msg="mlflow_db: %s" % message, **details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
