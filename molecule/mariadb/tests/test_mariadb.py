"""The all-in-one layout with MariaDB: listens on loopback, utf8mb4, least privilege, dumps,
the real client through nginx, and the schema upgrade from the previous pin with data intact."""

import pytest

PASSWORD = "molecule-maria-secret-0123"
USER = ("alice", "maria-alice-password-01")
THROUGH_NGINX = (
    f"MLFLOW_TRACKING_USERNAME={USER[0]} MLFLOW_TRACKING_PASSWORD={USER[1]} MLFLOW_TRACKING_INSECURE_TLS=true"
)


def sql(host, query, user=""):
    """Rows of a query as root over the unix socket (or as a user over TCP with its password)."""
    login = f"MYSQL_PWD='{PASSWORD}' mariadb -h 127.0.0.1 -u {user}" if user else "mariadb"
    out = host.check_output(f'{login} --batch --skip-column-names -e "{query}"')
    return [line.split("\t") for line in out.splitlines()]


def test_mariadb_listens_on_loopback_only(host):
    listeners = [line.split()[3] for line in host.check_output("ss -Hltn").splitlines()]
    assert [address for address in listeners if address.endswith(":3306")] == ["127.0.0.1:3306"], listeners
    assert host.socket("tcp://127.0.0.1:3306").is_listening


def test_server_and_database_are_utf8mb4(host):
    assert sql(host, "select @@character_set_server, @@collation_server") == [["utf8mb4", "utf8mb4_unicode_ci"]]
    schema = sql(
        host,
        "select default_character_set_name, default_collation_name from information_schema.schemata"
        " where schema_name = 'mlflow'",
    )
    assert schema == [["utf8mb4", "utf8mb4_unicode_ci"]]
    tables = sql(host, "select distinct table_collation from information_schema.tables where table_schema = 'mlflow'")
    assert tables and all(row[0].startswith("utf8mb4_") for row in tables), tables


def test_mlflow_account_has_its_database_only(host):
    assert sql(host, "select host from mysql.global_priv where user = 'mlflow'") == [["127.0.0.1"]]
    grants = sorted(row[0] for row in sql(host, "show grants for 'mlflow'@'127.0.0.1'"))
    assert len(grants) == 2, grants
    assert grants[0].startswith("GRANT ALL PRIVILEGES ON `mlflow`.* TO `mlflow`@`127.0.0.1`")
    assert grants[1].startswith("GRANT USAGE ON *.* TO `mlflow`@`127.0.0.1` IDENTIFIED BY PASSWORD")
    assert "WITH GRANT OPTION" not in " ".join(grants)
    assert sql(host, "select count(*) from mlflow.experiments", user="mlflow")[0][0] != "0"
    for refused in ("select count(*) from mysql.user", "create database mlops_other"):
        run = host.run(f"MYSQL_PWD='{PASSWORD}' mariadb -h 127.0.0.1 -u mlflow -e '{refused}'")
        assert run.rc != 0 and "denied" in run.stderr, refused


def test_root_logs_in_over_its_unix_socket_only(host):
    assert sql(host, "select current_user()") == [["root@localhost"]]
    assert sql(host, "select count(*) from mysql.global_priv where user = ''") == [["0"]]
    assert sql(host, "select host from mysql.global_priv where user = 'root'") == [["localhost"]]
    for attempt in (
        f"MYSQL_PWD='{PASSWORD}' mariadb -h 127.0.0.1 -u root -e 'select 1'",
        "MYSQL_PWD= mariadb -h 127.0.0.1 -u root -e 'select 1'",
        "MYSQL_PWD=invalid mariadb -h 127.0.0.1 -u root -e 'select 1'",
        "runuser -u nobody -- mariadb -u root -e 'select 1'",
    ):
        assert host.run(attempt).rc != 0, attempt


def test_mlflow_reaches_mariadb_with_pymysql(host):
    env = host.file("/etc/mlflow/mlflow-server.env").content_string
    assert "mysql+pymysql://mlflow:" in env and "@127.0.0.1:3306/mlflow?charset=utf8mb4" in env
    assert not host.file("/etc/mlflow/mlflow-server.env").mode & 0o004
    assert PASSWORD not in host.check_output("ps -eo args")


def test_new_mlflow_installed_and_schema_migrated_after_a_dump(host):
    version = host.check_output("/opt/mlflow/venv/bin/python -c 'import mlflow; print(mlflow.__version__)'")
    assert version.strip() == "3.17.2"
    before = host.file("/root/revision-before").content_string.strip()
    after = sql(host, "select version_num from mlflow.alembic_version")[0][0]
    assert before and after and before != after
    taken = [name for name in host.check_output("ls -1 /srv/mlflow-db-dumps/").split() if before in name]
    assert len(taken) == 1 and taken[0].endswith(".sql"), taken
    dump = host.file(f"/srv/mlflow-db-dumps/{taken[0]}")
    assert dump.mode == 0o600
    assert "CREATE TABLE `alembic_version`" in dump.content_string
    assert f"'{before}'" in dump.content_string


def test_data_logged_before_the_upgrade_reads_back(mlflow_smoke, health):
    health()
    result = mlflow_smoke("read", "upgrade")
    assert result["read"]["artifact_bytes"] == 10 * 1024 * 1024
    assert result["read"]["model_versions"] == 1


def test_real_client_through_nginx(mlflow_smoke, health):
    health()
    result = mlflow_smoke("both", "mariadb", uri="https://localhost", env=THROUGH_NGINX)
    assert result["read"]["model_versions"] == 1
    assert result["read"]["artifact_bytes"] == 10 * 1024 * 1024


def test_nightly_dump_keeps_the_newest(host):
    assert host.service("mlops-mlflow-mariadb-backup.timer").is_enabled
    timer = host.file("/etc/systemd/system/mlops-mlflow-mariadb-backup.timer").content_string
    assert "OnCalendar=*-*-* 04:05:00" in timer  # mariadb_backup_on_calendar
    script = host.file("/usr/local/sbin/mlops-mlflow-mariadb-backup").content_string
    assert "mariadb-dump" in script and "--single-transaction" in script
    for _ in range(3):
        host.check_output("systemctl start mlops-mlflow-mariadb-backup.service && sleep 1.1")
    backups = host.file("/var/backups/mlops-mlflow/mariadb")
    assert backups.mode == 0o700 and backups.user == "root"
    dumps = host.check_output("ls -1 /var/backups/mlops-mlflow/mariadb").split()
    assert len(dumps) == 2 and all(name.startswith("mlflow-") and name.endswith(".sql") for name in dumps), dumps
    newest = host.file(f"/var/backups/mlops-mlflow/mariadb/{sorted(dumps)[-1]}")
    assert newest.mode == 0o600
    assert "CREATE TABLE `experiments`" in newest.content_string


@pytest.mark.parametrize("restored", ["experiments", "runs", "registered_models"])
def test_a_dump_restores_into_a_scratch_database(host, restored):
    dump = sorted(host.check_output("ls -1 /var/backups/mlops-mlflow/mariadb").split())[-1]
    host.check_output(
        "mariadb -e 'drop database if exists mlops_restore; create database mlops_restore' && "
        f"mariadb mlops_restore < /var/backups/mlops-mlflow/mariadb/{dump}"
    )
    count = f"select count(*) from {{db}}.{restored}"
    assert sql(host, count.format(db="mlops_restore")) == sql(host, count.format(db="mlflow"))
