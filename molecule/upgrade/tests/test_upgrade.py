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
    # mlflow_server_db_backup_dir is set to /srv/mlflow-db-dumps in molecule.yml.
    dumps = host.check_output("ls -1 /srv/mlflow-db-dumps/").split()
    # The dump taken right before the migration is named after the revision it saved.
    taken = [name for name in dumps if before in name]
    assert len(taken) == 1, dumps
    listing = host.check_output(f"pg_restore --list /srv/mlflow-db-dumps/{taken[0]}")
    assert "TABLE DATA public alembic_version" in listing
    assert not host.file("/var/backups/mlops-mlflow/mlflow-db").exists


def test_data_logged_before_upgrade_reads_back(host, mlflow_smoke, health):
    health()
    result = mlflow_smoke("read", "upgrade")
    assert result["read"]["artifact_bytes"] == 10 * 1024 * 1024
    assert result["read"]["model_versions"] == 1


def test_upgrade_costs_one_restart_and_one_outage(host):
    """/health sampled every 0.2 s through the upgrade converge: the old server serves until it
    is stopped for the migration, the new one from its start on; nothing restarts in between."""
    lines = host.file("/root/availability.log").content_string.splitlines()
    assert lines[-1] == "done"
    samples = [line.split() for line in lines[:-1]]
    assert len(samples) > 50, "the probe barely ran"
    times, up = [float(s[0]) for s in samples], [s[1] == "200" for s in samples]
    pids = [s[2] for s in samples if s[2] not in {"0", "?"}]
    servers = list(dict.fromkeys(pids))
    assert len(servers) == 2, f"expected the old server then the new one, saw MainPIDs {servers}"
    assert pids == sorted(pids, key=servers.index), "the old server came back after the new one started"
    assert {s[3] for s in samples} == {samples[0][3]}, "systemd restarted a crashed server during the upgrade"
    assert up[0] and up[-1]
    outages = [i for i in range(1, len(up)) if up[i - 1] and not up[i]]
    assert len(outages) == 1, f"/health went down {len(outages)} times"
    back = next(i for i in range(outages[0], len(up)) if up[i])
    print(f"upgrade outage: {times[back] - times[outages[0]]:.1f} s of {times[-1] - times[0]:.0f} s sampled")
