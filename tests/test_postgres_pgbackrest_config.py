"""postgres role, pgBackRest: what the role renders and refuses, without a repository.

- The conf.d drop-in gains the archive settings only with postgres_pgbackrest_enabled (the
  default drop-in is unchanged), with the stanza and archive_timeout given.
- pgbackrest.conf carries the repository, retention, encryption and cluster options given.
- The schedule step (check mode, diff) renders one template service run as postgres with network
  families and no private network, and a full and a diff timer on the given calendars.
- The preflight names a missing repository setting; the restore entry point refuses a host
  without pgBackRest set up, before it stops anything.
(The real archive, backup and restores: tests/integration/test_postgres_pgbackrest.py.)
"""

from __future__ import annotations

import json

import pytest
from conftest import run_playbook
from support.role_template import render_role_template

SECRETS = {
    "postgres_pgbackrest_s3_key": "AKIAEXAMPLEKEY000001",
    "postgres_pgbackrest_s3_key_secret": "secret-key-for-rendering-0001",
    "postgres_pgbackrest_cipher_pass": "Kq7-cipher-pass-for-rendering-0001",
}


def _results(proc) -> list[tuple[str, dict]]:
    report = json.loads(proc.stdout)
    return [
        (task["task"]["name"].split(" : ", 1)[-1], task["hosts"]["localhost"]) for task in report["plays"][0]["tasks"]
    ]


def test_drop_in_archives_only_when_enabled(tmp_path):
    default = render_role_template("postgres", "postgresql.conf.j2", tmp_path / "off.conf", tmp_path)
    assert "archive" not in default and "wal_level" not in default

    text = render_role_template(
        "postgres",
        "postgresql.conf.j2",
        tmp_path / "on.conf",
        tmp_path,
        {
            "postgres_pgbackrest_enabled": True,
            "postgres_pgbackrest_archive_timeout": 30,
            "postgres_pgbackrest_stanza": "db1",
        },
    )
    assert "archive_mode = on\n" in text
    assert "archive_timeout = 30\n" in text
    assert "archive_command = 'pgbackrest --config=/etc/pgbackrest.conf --stanza=db1 archive-push %p'\n" in text


def test_pgbackrest_conf_carries_the_settings(tmp_path):
    text = render_role_template(
        "postgres",
        "pgbackrest.conf.j2",
        tmp_path / "pgbackrest.conf",
        tmp_path,
        {
            **SECRETS,
            "postgres_pgbackrest_s3_endpoint": "s3.eu-west-1.amazonaws.com",
            "postgres_pgbackrest_s3_bucket": "acme-pg",
            "postgres_pgbackrest_s3_region": "eu-west-1",
            "postgres_pgbackrest_s3_verify_tls": False,
            "postgres_pgbackrest_repo_path": "/mlflow/pg",
            "postgres_pgbackrest_retention_full": 3,
            "postgres_pgbackrest_retention_diff": 5,
            "postgres_pgbackrest_process_max": 2,
            "postgres_pgbackrest_stanza": "db1",
            "__postgres_version": "15",
        },
    )
    lines = set(text.splitlines())
    assert {
        "repo1-type=s3",
        "repo1-s3-endpoint=s3.eu-west-1.amazonaws.com",
        "repo1-storage-port=443",
        "repo1-s3-bucket=acme-pg",
        "repo1-s3-region=eu-west-1",
        "repo1-s3-uri-style=host",
        "repo1-storage-verify-tls=n",
        "repo1-path=/mlflow/pg",
        "repo1-cipher-type=aes-256-cbc",
        "repo1-cipher-pass=" + SECRETS["postgres_pgbackrest_cipher_pass"],
        "repo1-retention-full=3",
        "repo1-retention-diff=5",
        "process-max=2",
        "[db1]",
        "pg1-path=/var/lib/postgresql/15/main",
        "pg1-port=5432",
    } <= lines
    assert not any(line.startswith("repo1-storage-ca-file") for line in lines)


def test_schedule_renders_a_full_and_a_diff_timer(tmp_path):
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {"ansible.builtin.import_role": {"name": "mlops.mlflow.postgres", "tasks_from": "pgbackrest_schedule"}}
        ],
    }
    variables = {
        "postgres_pgbackrest_enabled": True,
        "postgres_pgbackrest_full_on_calendar": "Sat *-*-* 01:00:00",
        # Not "Sun..Fri": systemd refuses a range across the week's end, and so does calendar_interval.
        "postgres_pgbackrest_diff_on_calendar": "Mon..Fri,Sun *-*-* 01:00:00",
        "__systemd_job_unit_dir": str(tmp_path / "units"),
    }
    proc = run_playbook([play], tmp_path, variables=variables, check=True, diff=True)
    results = _results(proc)
    # Enabling a timer asks systemd, which a test container may not run.
    failed = [name for name, result in results if result.get("failed")]
    assert failed in ([], ["Enable the timers of mlops-mlflow-pgbackrest"]), proc.stdout[-3000:]
    by_name = dict(results)
    service = by_name["Install the service mlops-mlflow-pgbackrest@.service"]
    assert service["changed"]
    unit = service["diff"][0]["after"] if isinstance(service["diff"], list) else service["diff"]["after"]
    assert "ExecStart=/usr/local/sbin/mlops-mlflow-pgbackrest-backup %i\n" in unit
    assert "User=postgres\n" in unit
    assert "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n" in unit
    assert "PrivateNetwork" not in unit
    assert "ReadWritePaths=/var/lib/pgbackrest /var/log/pgbackrest\n" in unit
    timers = by_name["Install the timers of mlops-mlflow-pgbackrest"]["results"]
    rendered = {item["__systemd_job_instance"]["name"]: item["diff"][0]["after"] for item in timers}
    assert set(rendered) == {"full", "diff"}
    assert "OnCalendar=Sat *-*-* 01:00:00\n" in rendered["full"]
    assert "Unit=mlops-mlflow-pgbackrest@full.service\n" in rendered["full"]
    assert "OnCalendar=Mon..Fri,Sun *-*-* 01:00:00\n" in rendered["diff"]
    assert not (tmp_path / "units").exists()


@pytest.mark.parametrize(
    "missing",
    ["postgres_pgbackrest_s3_endpoint", "postgres_pgbackrest_s3_key_secret", "postgres_pgbackrest_cipher_pass"],
)
def test_preflight_names_a_missing_repository_setting(tmp_path, missing):
    variables = {
        **SECRETS,
        "postgres_db_password": "a-strong-db-password-0001",
        "postgres_pgbackrest_enabled": True,
        "postgres_pgbackrest_s3_endpoint": "s3.example.org",
        "postgres_pgbackrest_s3_bucket": "pg",
        missing: "",
    }
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.import_role": {"name": "mlops.mlflow.postgres", "tasks_from": "preflight"}}],
    }
    proc = run_playbook([play], tmp_path, variables=variables)
    assert proc.returncode != 0
    messages = " ".join(
        item.get("msg", "")
        for _, result in _results(proc)
        if result.get("failed")
        for item in result.get("results", [result])
        if item.get("failed")
    )
    assert f"{missing} is required when postgres_pgbackrest_enabled is true" in messages, messages
    assert SECRETS["postgres_pgbackrest_cipher_pass"] not in proc.stdout


def test_restore_refuses_a_host_without_pgbackrest(tmp_path):
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {"ansible.builtin.import_role": {"name": "mlops.mlflow.postgres", "tasks_from": "pgbackrest_restore"}}
        ],
    }
    variables = {
        "postgres_pgbackrest_enabled": True,
        "postgres_pgbackrest_restore_target_time": "2026-12-01 22:40:00+00",
        "_postgres_pgbackrest_restore_script": str(tmp_path / "missing-restore-script"),
    }
    proc = run_playbook([play], tmp_path, variables=variables)
    assert proc.returncode != 0
    results = _results(proc)
    assert [name for name, _ in results][-1] == "Check a restore can run"
    assert "converge the postgres role first" in results[-1][1]["msg"]
    assert not any(result.get("changed") for _, result in results)


def test_freshness_check_defaults_to_the_configured_age(tmp_path):
    text = render_role_template(
        "postgres",
        "pgbackrest-freshness.py.j2",
        tmp_path / "freshness",
        tmp_path,
        {"postgres_pgbackrest_max_age": 7200, "postgres_pgbackrest_stanza": "db1"},
    )
    assert "MAX_AGE = int(sys.argv[1]) if len(sys.argv) > 1 else 7200\n" in text
    assert '"--stanza=db1"' in text
    compile(text, "freshness", "exec")
