"""Verify the postgres role: service, network exposure, role rights, backup and restore."""

import time

PASSWORD = "molecule-db-secret-0123"
BACKUP_DIR = "/var/backups/mlops-mlflow/postgres"


def psql_admin(host, sql, db="mlflow"):
    return host.check_output(f'runuser -u postgres -- psql -d {db} -tAc "{sql}"')


def psql_app(host, sql, password=PASSWORD):
    return host.run(f"PGPASSWORD='{password}' psql -h 127.0.0.1 -U mlflow -d mlflow -v ON_ERROR_STOP=1 -tAc \"{sql}\"")


def test_service_running_and_enabled(host):
    service = host.service("postgresql")
    assert service.is_running
    assert service.is_enabled


def test_listens_on_loopback_only(host):
    assert host.socket("tcp://127.0.0.1:5432").is_listening
    assert not host.socket("tcp://0.0.0.0:5432").is_listening
    listeners = host.check_output("ss -Hltn 'sport = :5432'")
    for line in listeners.splitlines():
        assert "127.0.0.1:5432" in line


def test_app_role_logs_in_with_scram_password(host):
    result = psql_app(host, "select current_user")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "mlflow"
    assert psql_app(host, "select 1", password="wrong-password").rc != 0


def test_app_role_has_no_admin_rights(host):
    flags = psql_admin(host, "select rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname='mlflow'")
    assert flags.strip() == "f|f|f"
    stored = psql_admin(host, "select rolpassword from pg_authid where rolname='mlflow'")
    assert stored.startswith("SCRAM-SHA-256$")


def test_app_role_owns_database(host):
    owner = psql_admin(host, "select pg_get_userbyid(datdba) from pg_database where datname='mlflow'")
    assert owner.strip() == "mlflow"


def test_backup_timer_enabled(host):
    timer = host.service("mlops-mlflow-pg-backup.timer")
    assert timer.is_enabled
    assert timer.is_running
    # The shared parent stays root's 0755: other roles keep their backups beside this one.
    parent = host.file("/var/backups/mlops-mlflow")
    assert (parent.user, parent.group, parent.mode) == ("root", "root", 0o755)


def _run_backup(host):
    host.check_output("systemctl start mlops-mlflow-pg-backup.service")
    time.sleep(1.1)  # dump names carry a one-second timestamp


def test_backup_and_restore_drill(host):
    assert (
        psql_app(host, "drop table if exists drill; create table drill (x int); insert into drill values (42)").rc == 0
    )
    _run_backup(host)
    dumps = host.check_output(f"ls -1t {BACKUP_DIR}/mlflow-*.dump").split()
    assert dumps, "the backup service wrote no dump"
    assert host.file(dumps[0]).mode == 0o600
    assert host.file(BACKUP_DIR).mode == 0o700

    assert psql_app(host, "drop table drill").rc == 0
    # The documented restore command (roles/postgres/README.md).
    host.check_output(f"runuser -u postgres -- pg_restore --clean --if-exists -d mlflow {dumps[0]}")
    assert psql_app(host, "select x from drill").stdout.strip() == "42"
    assert psql_admin(host, "select tableowner from pg_tables where tablename='drill'").strip() == "mlflow"


def test_backup_retention_keeps_newest(host):
    for _ in range(3):
        _run_backup(host)
    dumps = host.check_output(f"ls -1 {BACKUP_DIR}/mlflow-*.dump").split()
    assert len(dumps) == 2
