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
  - Reads the store's current alembic revision and the head revision of the mlflow installed
    in a venv, and migrates the store to that head only when they differ (C(changed=true) only
    then). A fresh empty database gets the full schema.
  - Run it before the mlflow server (re)starts. mlflow 3.x opening an older store migrates it
    on the spot with no backup; this module is where the backup happens.
  - Before any migration of an existing store it takes a backup (pg_dump custom format for
    PostgreSQL, the SQLite online backup API for SQLite) and keeps the newest I(backup_keep).
  - The backend URI is handed to the venv's python in an environment variable, never on a
    command line; every message and returned value carries the URI with its password redacted.
author:
  - mlops.mlflow maintainers (@mlops-mlflow)
options:
  backend_store_uri:
    description: SQLAlchemy URI of the backend store, e.g. C(postgresql+psycopg2://mlflow:pw@127.0.0.1:5432/mlflow) or C(sqlite:////var/lib/mlflow/mlflow.db).
    type: str
    required: true
  python:
    description: Interpreter of the venv that holds the mlflow the server runs.
    type: path
    default: /opt/mlflow/venv/bin/python
  state:
    description:
      - C(upgraded) migrates the store to the installed mlflow's head revision.
      - C(checked) only reports (C(upgrade_needed)), never migrates, C(changed=false).
    type: str
    choices: [upgraded, checked]
    default: upgraded
  backup:
    description: Back the store up before a migration (not needed for a fresh database). Not supported for mysql yet.
    type: bool
    default: true
  backup_dir:
    description: Directory for backups (created with mode C(0700); backups are C(0600)).
    type: path
    default: /var/backups/mlflow
  backup_keep:
    description: Number of newest backups of this database to keep.
    type: int
    default: 5
  pg_dump:
    description: Path of pg_dump; found on C(PATH) when not set.
    type: path
  timeout:
    description: Seconds to wait for a database connection.
    type: int
    default: 10
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports whether an upgrade would run, from which revision to which, and touches nothing.
  diff_mode:
    support: full
  platform:
    support: full
    platforms: posix
notes:
  - A store at a revision the installed mlflow does not know (a newer mlflow wrote it) fails and is never touched.
requirements:
  - mlflow, SQLAlchemy and the database driver in the venv of I(python)
  - pg_dump on the target for PostgreSQL backups
"""

EXAMPLES = r"""
- name: Bring the store to the installed mlflow before restarting the server
  mlops.mlflow.mlflow_db:
    backend_store_uri: "postgresql+psycopg2://mlflow:{{ vault_db_password | urlencode }}@127.0.0.1:5432/mlflow"
    python: /opt/mlflow/venv/bin/python
    backup_dir: /var/backups/mlops-mlflow/mlflow-db

- name: Only find out whether an upgrade is due
  mlops.mlflow.mlflow_db:
    backend_store_uri: sqlite:////var/lib/mlflow/mlflow.db
    state: checked
  register: schema
"""

RETURN = r"""
backend:
  description: Kind of store.
  returned: always
  type: str
  sample: postgresql
mlflow_version:
  description: Version of the mlflow in the venv.
  returned: when the venv could be probed
  type: str
  sample: 3.17.2
current_revision:
  description: Alembic revision of the store before the run; null for a fresh database.
  returned: when the store could be read
  type: str
  sample: 1b5f0d9ad7c1
head_revision:
  description: Newest revision the installed mlflow knows.
  returned: when the venv could be probed
  type: str
  sample: 6953534de441
revision:
  description: Revision of the store after the run (unchanged in check mode and with C(state=checked)).
  returned: when the store could be read
  type: str
upgrade_needed:
  description: Whether the store is behind the installed mlflow.
  returned: when the store could be read
  type: bool
upgraded:
  description: Whether a migration ran.
  returned: always
  type: bool
backup_path:
  description: Backup written before the migration, or null.
  returned: always
  type: str
  sample: /var/backups/mlflow/mlflow-20261123T031500Z-1b5f0d9ad7c1.dump
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.mlops.mlflow.plugins.module_utils.mlflow_db import (
    PROBE_PROGRAM,
    URI_ENV,
    MlflowDbError,
    StoreUri,
    backup_name,
    ensure_private_dir,
    parse_probe_output,
    prune_backups,
    sqlite_backup,
)


def _run_probe(module, store, mode):
    python = module.params["python"]
    if not os.path.exists(python):
        raise MlflowDbError("python %s does not exist (is the mlflow venv installed?)" % python)
    rc, stdout, stderr = module.run_command(
        [python, "-c", PROBE_PROGRAM, mode, str(module.params["timeout"])],
        environ_update={URI_ENV: store.uri},
    )
    data = parse_probe_output(stdout)
    if rc != 0 or data is None or "error" in data:
        reason = (data or {}).get("error") or (stderr.strip().splitlines() or ["no output"])[-1]
        raise MlflowDbError(
            "%s of %s with %s failed: %s" % (mode, store.redacted, python, store.scrub(reason)),
            **dict((k, v) for k, v in (data or {}).items() if k != "error"),
        )
    return data


def _backup(module, store, revision):
    directory = module.params["backup_dir"]
    ensure_private_dir(directory)
    if store.backend == "sqlite":
        path = os.path.join(directory, backup_name(store.database, revision, "sqlite"))
        sqlite_backup(store.database, path)
        suffix = "sqlite"
    elif store.backend == "postgresql":
        pg_dump = module.params["pg_dump"] or module.get_bin_path("pg_dump")
        if not pg_dump:
            raise MlflowDbError("pg_dump was not found; install postgresql-client or set pg_dump")
        path = os.path.join(directory, backup_name(store.database, revision, "dump"))
        old_umask = os.umask(0o077)
        try:
            rc, _out, stderr = module.run_command(
                [pg_dump, "--format=custom", "--file", path], environ_update=store.pg_env()
            )
        finally:
            os.umask(old_umask)
        if rc != 0:
            if os.path.exists(path):
                os.unlink(path)
            raise MlflowDbError("pg_dump of %s failed: %s" % (store.redacted, store.scrub(stderr.strip())))
        suffix = "dump"
    else:
        raise MlflowDbError("backup of %s stores is not supported yet; set backup=false" % store.backend)
    prune_backups(directory, store.database, suffix, module.params["backup_keep"])
    return path


def run(module):
    params = module.params
    store = StoreUri(params["backend_store_uri"])
    result = dict(changed=False, upgraded=False, backup_path=None, backend=store.backend)
    if params["backup_keep"] < 1:
        raise MlflowDbError("backup_keep must be at least 1")
    if params["backup"] and params["state"] == "upgraded" and store.backend not in ("sqlite", "postgresql"):
        raise MlflowDbError("backup of %s stores is not supported yet; set backup=false" % store.backend)

    probe = _run_probe(module, store, "probe")
    current, head = probe["current_revision"], probe["head_revision"]
    result.update(
        mlflow_version=probe["mlflow_version"],
        current_revision=current,
        head_revision=head,
        revision=current,
        upgrade_needed=current != head,
    )
    if not probe["known_revision"]:
        raise MlflowDbError(
            "backend store %s is at revision %s, which the installed mlflow %s does not know "
            "(is the database newer than the installed mlflow?)" % (store.redacted, current, probe["mlflow_version"]),
            **result,
        )
    if current is None and not probe["empty"]:
        raise MlflowDbError("%s has tables but no alembic_version: not an MLflow store" % store.redacted, **result)
    if params["state"] == "checked" or current == head:
        return result

    result["changed"] = True
    if module._diff:
        result["diff"] = dict(before="revision: %s\n" % current, after="revision: %s\n" % head)
    if module.check_mode:
        return result

    if params["backup"] and current is not None:
        result["backup_path"] = _backup(module, store, current)
    try:
        migrated = _run_probe(module, store, "upgrade")
    except MlflowDbError as exc:
        kept = " (backup kept at %s)" % result["backup_path"] if result["backup_path"] else ""
        raise MlflowDbError("%s%s" % (exc, kept), **result) from None
    result.update(upgraded=True, revision=migrated["revision"])
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
            timeout=dict(type="int", default=10),
        ),
        supports_check_mode=True,
    )
    try:
        result = run(module)
    except MlflowDbError as exc:
        details = dict(exc.details)
        details.update(changed=False, upgraded=False)
        module.fail_json(msg="mlflow_db: %s" % to_native(exc), **details)
    except (OSError, ValueError) as exc:
        store_text = module.params["backend_store_uri"]
        try:
            message = StoreUri(store_text).scrub(to_native(exc))
        except MlflowDbError:
            message = "invalid backend_store_uri"
        module.fail_json(msg="mlflow_db: %s" % message, changed=False, upgraded=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
