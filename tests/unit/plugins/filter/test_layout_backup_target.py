"""mlops_backup_target_*: one off-host target feeds pgBackRest on the database host and the backup
role on the mlflow servers; its secrets are required and set with no_log; bad input names the knob."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.mlops.mlflow.plugins.filter.layout import layout, layout_missing
from ansible_collections.mlops.mlflow.tests.unit.plugins.filter.layout_inputs import ALL_IN_ONE, SECRETS

TARGET = {
    "mlops_backup_target_endpoint_url": "https://backup.lan:8443",
    "mlops_backup_target_bucket": "mlflow-backups",
    "mlops_backup_target_access_key": "BACKUPKEY1",
    "mlops_backup_target_secret_key": "backup-secret-00001",
    "mlops_backup_target_cipher_pass": "cipher-pass-0000000001",
}
SPLIT = {"mlflow_db": ["db"], "mlflow_object_store": ["s3"], "mlflow_server": ["m1"], "mlflow_proxy": ["px"]}
ADDRESSES = {"db": "10.0.0.11", "s3": "10.0.0.12", "m1": "10.0.0.21", "px": "10.0.0.30"}


def _hostvars(groups, **extra):
    hosts = sorted({host for members in groups.values() for host in members})
    return {
        host: {**SECRETS, **TARGET, "mlops_private_address": ADDRESSES.get(host, "10.0.0.1"), **extra} for host in hosts
    }


def _both(host, hostvars, groups):
    return {**layout(host, hostvars, groups), **layout(host, hostvars, groups, secrets=True)}


def test_the_database_host_archives_to_the_target_with_pgbackrest():
    derived = _both("db", _hostvars(SPLIT), SPLIT)
    assert {name: value for name, value in derived.items() if name.startswith("postgres_pgbackrest")} == {
        "postgres_pgbackrest_enabled": True,
        "postgres_pgbackrest_s3_bucket": "mlflow-backups",
        "postgres_pgbackrest_s3_region": "us-east-1",
        "postgres_pgbackrest_s3_endpoint": "backup.lan",
        "postgres_pgbackrest_s3_port": 8443,
        "postgres_pgbackrest_s3_uri_style": "path",
        "postgres_pgbackrest_repo_path": "/mlflow/pgbackrest",
        "postgres_pgbackrest_s3_key": "BACKUPKEY1",
        "postgres_pgbackrest_s3_key_secret": "backup-secret-00001",
        "postgres_pgbackrest_cipher_pass": "cipher-pass-0000000001",
    }
    assert "backup_enabled" not in derived


def test_the_servers_ship_artifacts_and_stores_to_the_same_target():
    derived = _both("m1", _hostvars(SPLIT), SPLIT)
    assert {name: value for name, value in derived.items() if name.startswith("backup_target")} == {
        "backup_target_endpoint_url": "https://backup.lan:8443",
        "backup_target_region": "us-east-1",
        "backup_target_bucket": "mlflow-backups",
        "backup_target_prefix": "mlflow",
        "backup_target_provider": "Other",
        "backup_target_access_key": "BACKUPKEY1",
        "backup_target_secret_key": "backup-secret-00001",
    }
    assert derived["backup_enabled"] is True
    assert not [name for name in derived if name.startswith("postgres_")]
    # The proxy and the object store get nothing of it.
    assert not [name for name in _both("px", _hostvars(SPLIT), SPLIT) if "backup" in name]
    assert not [name for name in _both("s3", _hostvars(SPLIT), SPLIT) if "backup" in name]


def test_the_keys_and_the_cipher_pass_are_secrets():
    plain = layout("pi", _hostvars(ALL_IN_ONE), ALL_IN_ONE)
    secret = layout("pi", _hostvars(ALL_IN_ONE), ALL_IN_ONE, secrets=True)
    for name in (
        "backup_target_access_key",
        "backup_target_secret_key",
        "postgres_pgbackrest_s3_key",
        "postgres_pgbackrest_s3_key_secret",
        "postgres_pgbackrest_cipher_pass",
    ):
        assert name in secret and name not in plain


def test_aws_s3_by_region_and_a_prefix_of_ones_own():
    hostvars = _hostvars(
        ALL_IN_ONE,
        mlops_backup_target_endpoint_url="",
        mlops_backup_target_region="eu-west-1",
        mlops_backup_target_prefix="homelab/mlflow",
    )
    derived = layout("pi", hostvars, ALL_IN_ONE)
    assert derived["postgres_pgbackrest_s3_endpoint"] == "s3.eu-west-1.amazonaws.com"
    assert derived["postgres_pgbackrest_s3_port"] == 443
    assert derived["postgres_pgbackrest_s3_uri_style"] == "host"
    assert derived["postgres_pgbackrest_repo_path"] == "/homelab/mlflow/pgbackrest"
    assert derived["backup_target_provider"] == "AWS"
    assert derived["backup_target_prefix"] == "homelab/mlflow"
    assert derived["backup_target_region"] == "eu-west-1"


def test_without_a_bucket_nothing_is_backed_up_off_host():
    hostvars = _hostvars(ALL_IN_ONE, mlops_backup_target_bucket="")
    derived = _both("pi", hostvars, ALL_IN_ONE)
    assert "postgres_pgbackrest_enabled" not in derived and "backup_enabled" not in derived
    assert layout_missing(hostvars, ALL_IN_ONE) == []


@pytest.mark.parametrize(
    ("knob", "hosts"),
    [
        ("mlops_backup_target_access_key", ["db", "m1"]),
        ("mlops_backup_target_secret_key", ["db", "m1"]),
        ("mlops_backup_target_cipher_pass", ["db"]),
    ],
)
def test_each_secret_left_out_is_named_with_the_hosts_that_need_it(knob, hosts):
    hostvars = _hostvars(SPLIT)
    for host in hostvars:
        del hostvars[host][knob]
    missing = layout_missing(hostvars, SPLIT)
    assert [(entry["name"], sorted(entry["hosts"])) for entry in missing] == [(knob, hosts)]


def test_the_auth_apps_users_go_with_the_database_or_with_the_sqlite_stores():
    # On PostgreSQL the basic-auth app's users are in mlflow's database: pgBackRest ships them.
    derived = layout("pi", _hostvars(ALL_IN_ONE, mlops_mlflow_auth=True), ALL_IN_ONE)
    assert "backup_stores" not in derived
    sqlite = {"mlflow_server": ["pi"], "mlflow_proxy": ["pi"]}
    derived = layout("pi", _hostvars(sqlite, mlops_mlflow_auth=True), sqlite)
    assert derived["backup_stores"] == [
        {"name": "mlflow", "path": "/var/lib/mlflow/mlflow.db"},
        {"name": "basic_auth", "path": "/var/lib/mlflow/basic_auth.db"},
    ]
    # A SQLite layout ships its store with no database host and no cipher pass.
    hostvars = _hostvars(sqlite)
    for host in hostvars:
        del hostvars[host]["mlops_backup_target_cipher_pass"]
    assert layout_missing(hostvars, sqlite) == []
    assert "postgres_pgbackrest_enabled" not in layout("pi", hostvars, sqlite)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"mlops_backup_target_endpoint_url": "backup.lan:8443"}, "mlops_backup_target_endpoint_url is 'backup.lan"),
        ({"mlops_backup_target_endpoint_url": "https://backup.lan/bucket"}, "without a path"),
        ({"mlops_backup_target_endpoint_url": "http://backup.lan:8333"}, "pgBackRest reaches S3 over HTTPS only"),
        ({"mlops_backup_target_bucket": "Backups_1"}, "mlops_backup_target_bucket is 'Backups_1'"),
        ({"mlops_backup_target_prefix": "/mlflow/"}, "mlops_backup_target_prefix is '/mlflow/'"),
        ({"mlops_db_engine": "mariadb"}, "with mlops_db_engine mariadb"),
    ],
)
def test_bad_target_input_is_refused_naming_the_knob(extra, message):
    with pytest.raises(AnsibleFilterError, match=message.replace("(", r"\(")):
        layout("pi", _hostvars(ALL_IN_ONE, **extra), ALL_IN_ONE)


def test_a_plain_http_target_serves_a_layout_without_a_database_host():
    sqlite = {"mlflow_server": ["pi"], "mlflow_proxy": ["pi"]}
    derived = layout("pi", _hostvars(sqlite, mlops_backup_target_endpoint_url="http://backup.lan:8333"), sqlite)
    assert derived["backup_target_endpoint_url"] == "http://backup.lan:8333"


def test_a_role_variable_the_user_set_wins():
    hostvars = _hostvars(SPLIT)
    hostvars["db"]["postgres_pgbackrest_repo_path"] = "/elsewhere"
    hostvars["m1"]["backup_target_prefix"] = "other"
    assert "postgres_pgbackrest_repo_path" not in layout("db", hostvars, SPLIT)
    assert "backup_target_prefix" not in layout("m1", hostvars, SPLIT)
