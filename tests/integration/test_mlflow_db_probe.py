"""The mlflow_db probe (state=checked, and the check before every upgrade) reads the migration graph
from the scripts' text and never imports mlflow: that import takes seconds on a small host, on every
converge. These tests hold the shortcut to what alembic itself says, on real stores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from alembic.script import ScriptDirectory
from ansible_collections.mlops.mlflow.plugins.module_utils.mlflow_db import (
    PROBE_PROGRAM,
    RESULT_MARKER,
    URI_ENV,
)
from mlflow.store.db import utils as db_utils
from support.postgres import postgres_server  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

# Runs the probe as the module does, then tells on exit whether mlflow got imported.
TELL = "import atexit, sys\natexit.register(lambda: print('IMPORTED', 'mlflow' in sys.modules))\n"


def probe(uri: str, mode: str = "probe", expected: str | None = None) -> tuple[dict, bool]:
    argv = [sys.executable, "-c", TELL + PROBE_PROGRAM, mode, "10"] + ([expected or ""] if mode == "upgrade" else [])
    proc = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, **{URI_ENV: uri}), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    return json.loads(line[len(RESULT_MARKER) :]), "IMPORTED True" in proc.stdout


def alembic_graph() -> tuple[str, set[str]]:
    script = ScriptDirectory.from_config(db_utils._get_alembic_config(""))
    (head,) = script.get_heads()
    return head, {rev.revision for rev in script.walk_revisions()}


def test_probe_of_a_current_store_reads_alembic_head_without_importing_mlflow(postgres_server):  # noqa: F811
    db = postgres_server.new_database("probed")
    head, known = alembic_graph()
    migrated, imported = probe(db.uri(), "upgrade", "")
    assert imported and migrated["revision"] == head  # the upgrade path still uses mlflow itself

    found, imported = probe(db.uri())
    assert not imported
    assert found["head_revision"] == head and found["current_revision"] == head
    assert found["mlflow_version"] == __import__("mlflow").__version__
    assert found["known_revision"] is True and found["empty"] is False

    # Every revision alembic knows is one the probe accepts as known.
    oldest = sorted(known)[0]
    postgres_server.psql(f"update alembic_version set version_num = '{oldest}'", db.name)
    found, imported = probe(db.uri())
    assert not imported and found["current_revision"] == oldest and found["known_revision"] is True


def test_probe_refuses_an_unknown_revision_and_spots_foreign_tables(postgres_server, tmp_path):  # noqa: F811
    db = postgres_server.new_database("future")
    probe(db.uri(), "upgrade", "")
    postgres_server.psql("update alembic_version set version_num = 'ffffffffffff'", db.name)
    found, _ = probe(db.uri())
    assert found["current_revision"] == "ffffffffffff" and found["known_revision"] is False

    # No alembic revision but tables: only then does the probe need mlflow's initial models.
    foreign = postgres_server.new_database("foreign")
    postgres_server.psql("create table invoices (id int)", foreign.name)
    found, imported = probe(foreign.uri())
    assert imported and found["current_revision"] is None and found["foreign_tables"] == ["invoices"]


def test_probe_falls_back_to_alembic_when_a_script_is_not_plain(tmp_path):
    """A migration script whose revision is computed: the text reading gives up and alembic decides."""
    store = tmp_path / "absent.db"
    program = PROBE_PROGRAM.replace(
        "ast.literal_eval(node.value)", "ast.literal_eval(ast.parse('f()', mode='eval').body)"
    )
    argv = [sys.executable, "-c", TELL + program, "probe", "10"]
    env = dict(os.environ, **{URI_ENV: f"sqlite:///{store}"})
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    assert "IMPORTED True" in proc.stdout
    assert json.loads(proc.stdout.split(RESULT_MARKER, 1)[1].splitlines()[0])["head_revision"] == alembic_graph()[0]
