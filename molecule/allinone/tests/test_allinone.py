"""postgres + mlflow_server: real client round trip, no secrets exposed, back after a reboot."""

PASSWORD = "molecule-db-secret-0123"


def test_unit_waits_for_local_postgres(host):
    unit = host.file("/etc/systemd/system/mlflow-server.service").content_string
    assert "After=network-online.target postgresql.service" in unit
    assert "StartLimitIntervalSec=0" in unit
    assert PASSWORD not in unit


def test_password_only_in_env_file(host):
    env = host.file("/etc/mlflow/mlflow-server.env")
    assert (env.user, env.group, env.mode) == ("root", "mlflow", 0o640)
    assert "postgresql+psycopg2://mlflow:" in env.content_string
    assert PASSWORD not in host.check_output("ps -eo args")
    assert PASSWORD not in host.check_output("systemctl show mlflow-server -p ExecStart")


def test_schema_at_head_of_installed_mlflow(host):
    current = host.check_output(
        "runuser -u postgres -- psql -d mlflow -tAc 'select version_num from alembic_version'"
    ).strip()
    head = host.check_output(
        '/opt/mlflow/venv/bin/python -c "from alembic.script import ScriptDirectory; '
        "from alembic.config import Config; import mlflow.store.db_migrations as m, os; "
        "c = Config(); c.set_main_option('script_location', os.path.dirname(m.__file__)); "
        'print(ScriptDirectory.from_config(c).get_current_head())"'
    ).strip()
    assert current == head


def test_real_client_round_trip_survives_reboot(host, mlflow_smoke, reboot, health):
    written = mlflow_smoke("write", "allinone")
    run_id = written["written"]["run_id"]
    stored = host.check_output(
        f"runuser -u postgres -- psql -d mlflow -tAc \"select count(*) from metrics where run_uuid='{run_id}'\""
    )
    assert stored.strip() == "5"
    reboot()
    health()
    assert mlflow_smoke("read", "allinone")["read"]["run_id"] == run_id
