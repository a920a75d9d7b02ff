"""After the upgrade converge: new mlflow, migrated schema, backup taken, old data intact."""


def test_new_mlflow_installed(host):
    version = host.check_output("/opt/mlflow/venv/bin/python -c 'import mlflow; print(mlflow.__version__)'")
    assert version.strip() == "3.17.2"


def test_schema_migrated_and_backed_up(host):
    before = host.file("/root/revision-before").content_string.strip()
    after = host.check_output(
        "runuser -u postgres -- psql -d mlflow -tAc 'select version_num from alembic_version'"
    ).strip()
    assert before and after and before != after
    dumps = host.check_output("ls -1 /var/backups/mlops-mlflow/mlflow-db/").split()
    # The dump taken right before the migration is named after the revision it saved.
    taken = [name for name in dumps if before in name]
    assert len(taken) == 1, dumps
    listing = host.check_output(f"pg_restore --list /var/backups/mlops-mlflow/mlflow-db/{taken[0]}")
    assert "TABLE DATA public alembic_version" in listing


def test_data_logged_before_upgrade_reads_back(host, mlflow_smoke, health):
    health()
    result = mlflow_smoke("read", "upgrade")
    assert result["read"]["artifact_bytes"] == 10 * 1024 * 1024
    assert result["read"]["model_versions"] == 1
