"""The mariadb role without a server: bad input fails early naming the variable, and its
settings file and dump script carry the non-default values they are given."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import run_playbook
from support.role_template import render_role_template

GOOD = {"mariadb_db_password": "a-good-maria-password"}
CASES = [
    ({"mariadb_db_password": "short"}, "mariadb_db_password"),
    ({"mariadb_db_password": "<db password>"}, "mariadb_db_password"),
    ({"mariadb_db_name": "mlflow-db"}, "mariadb_db_name"),
    ({"mariadb_db_user": "root"}, "mariadb_db_user"),
    ({"mariadb_db_user": "Mlflow User"}, "mariadb_db_user"),
    ({"mariadb_port": 70000}, "mariadb_port"),
    ({"mariadb_bind_addresses": ["db.example"]}, "mariadb_bind_addresses"),
    ({"mariadb_bind_addresses": []}, "mariadb_bind_addresses"),
    ({"mariadb_client_hosts": ["10.0.0.0/24"]}, "mariadb_client_hosts"),
    ({"mariadb_client_hosts": ["%"]}, "mariadb_client_hosts"),
    ({"mariadb_collation": "latin1_swedish_ci"}, "mariadb_collation"),
    ({"mariadb_backup_keep": 0}, "mariadb_backup_keep"),
    ({"mariadb_backup_dir": "backups"}, "mariadb_backup_dir"),
]
SETTINGS = {
    "mariadb_bind_addresses": ["127.0.0.1", "10.0.0.11"],
    "mariadb_port": 3307,
    "mariadb_collation": "utf8mb4_bin",
    "mariadb_max_connections": 25,
    "mariadb_innodb_buffer_pool_size": "32M",
    "mariadb_db_name": "tracking",
    "mariadb_backup_dir": "/srv/maria-dumps",
    "mariadb_backup_keep": 3,
}


@pytest.mark.parametrize(("bad", "variable"), CASES, ids=[f"{variable}-{i}" for i, (_b, variable) in enumerate(CASES)])
def test_bad_input_fails_early_naming_the_variable(bad, variable, tmp_path):
    play = {"name": "bad input", "hosts": "localhost", "gather_facts": False, "roles": ["mlops.mlflow.mariadb"]}
    proc = run_playbook([play], tmp_path, variables={**GOOD, **bad}, check=True)
    assert proc.returncode != 0, f"bad input was accepted:\n{proc.stdout[-2000:]}"
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    failed = [t for t in tasks if t["hosts"]["localhost"].get("failed")]
    assert len(failed) == 1
    task = failed[0]["task"]["name"].split(" : ", 1)[-1]
    assert task.startswith(("Validating arguments", "Check ")), f"failed late, in task {task!r}"
    assert not any(t["hosts"]["localhost"].get("changed") for t in tasks)
    assert variable in json.dumps(failed[0]["hosts"]["localhost"])
    assert "a-good-maria-password" not in proc.stdout
    if bad.get("mariadb_db_password"):
        assert bad["mariadb_db_password"] not in proc.stdout


def test_settings_file_carries_the_given_values(tmp_path):
    text = render_role_template("mariadb", "mariadb.cnf.j2", tmp_path / "90.cnf", tmp_path, SETTINGS)
    lines = {line.partition(" = ")[0]: line.partition(" = ")[2] for line in text.splitlines() if " = " in line}
    assert lines["bind-address"] == "127.0.0.1,10.0.0.11"
    assert lines["port"] == "3307"
    assert lines["character-set-server"] == "utf8mb4"
    assert lines["collation-server"] == "utf8mb4_bin"
    assert lines["max_connections"] == "25"
    assert lines["innodb_buffer_pool_size"] == "32M"
    assert "skip-name-resolve" in text.splitlines()


def test_dump_script_dumps_one_transaction_and_keeps_the_newest(tmp_path):
    script = tmp_path / "backup.sh"
    text = render_role_template("mariadb", "mariadb-backup.sh.j2", script, tmp_path, SETTINGS)
    subprocess.run(["sh", "-n", str(script)], check=True)
    assert "dir='/srv/maria-dumps'" in text and "db='tracking'" in text
    assert "mariadb-dump --socket=/run/mysqld/mysqld.sock --single-transaction" in text
    assert "tail -n +4 " in text  # the newest 3 stay


def test_dump_script_rotates_against_a_fake_mariadb_dump(tmp_path):
    """The rendered script with a stand-in mariadb-dump on PATH: each run adds one dump, keeps 3."""
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    script = tmp_path / "backup.sh"
    render_role_template(
        "mariadb", "mariadb-backup.sh.j2", script, tmp_path, {**SETTINGS, "mariadb_backup_dir": str(dumps)}
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "mariadb-dump"
    fake.write_text('#!/bin/sh\nfor a; do case "$a" in --result-file=*) echo "-- dump $*" > "${a#*=}";; esac; done\n')
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    names = set()
    for stamp in ("20261201T000001Z", "20261201T000002Z", "20261201T000003Z", "20261201T000004Z", "20261201T000005Z"):
        date = bin_dir / "date"
        date.write_text(f"#!/bin/sh\necho {stamp}\n")
        date.chmod(0o755)
        subprocess.run(["sh", str(script)], check=True, env=env)
        names.add(f"tracking-{stamp}.sql")
        # ls -t orders by mtime: each dump older than the next run's (written now), in stamp order.
        subprocess.run(
            ["touch", "-d", f"@{1_700_000_000 + len(names)}", str(dumps / f"tracking-{stamp}.sql")], check=True
        )
    kept = sorted(p.name for p in dumps.iterdir())
    assert kept == [f"tracking-20261201T00000{i}Z.sql" for i in (3, 4, 5)]
    assert all((dumps / name).stat().st_mode & 0o077 == 0 for name in kept)
    assert "--single-transaction" in (dumps / kept[-1]).read_text()


def test_the_role_is_in_site_yml_for_the_mariadb_engine():
    import yaml

    plays = yaml.safe_load((Path(__file__).resolve().parent.parent / "playbooks" / "site.yml").read_text())
    db_play = next(play for play in plays if play.get("hosts") == "mlflow_db")
    roles = {entry["role"]: entry.get("when") for entry in db_play["roles"]}
    assert roles["mlops.mlflow.mariadb"] == "mlops_db_engine | default('postgresql') == 'mariadb'"
    assert roles["mlops.mlflow.postgres"] == "mlops_db_engine | default('postgresql') == 'postgresql'"
