"""Bad role input fails before any host change, with a message naming the variable.

Each case runs one role against this machine in check mode with one bad value on
top of valid settings; the play must fail in argument validation or the role's
preflight checks (never in a task that would touch the host), and the failure
message must name the variable.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_playbook

GOOD = {
    "common": {},
    "postgres": {"postgres_db_password": "a-good-db-password"},
    "mlflow_server": {},
    "nginx_proxy": {"nginx_proxy_users": [{"name": "alice", "password": "a-good-password"}]},
    "s3_iam": {"s3_iam_bucket": "acme-mlflow"},
    "reconverge": {"reconverge_collection_tarball": "/tmp/mlops-mlflow.tar.gz"},
    "object_store": {
        "object_store_admin_access_key": "ADMINKEY01",
        "object_store_admin_secret_key": "a-good-admin-secret",
        "object_store_mlflow_access_key": "MLFLOWKEY01",
        "object_store_mlflow_secret_key": "a-good-mlflow-secret",
    },
}
# MLflow's auth app switched on with valid settings; each case spoils one of them.
AUTH = {
    "mlflow_server_auth_enabled": True,
    "mlflow_server_auth_admin_password": "a-good-admin-password",
    "mlflow_server_auth_secret_key": "a-good-flask-secret-key-0123456789abcdef",
}
# The secret access key of AWS's documentation: 40 characters, and a placeholder.
AWS_EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CASES = [
    ("common", {"common_timezone": "Mars/Olympus Mons"}, "common_timezone"),
    ("common", {"common_system_users": [{"name": "Bad User"}]}, "common_system_users"),
    ("common", {"common_apt_cache_valid_time": "soon"}, "common_apt_cache_valid_time"),
    ("postgres", {"postgres_db_password": "short"}, "postgres_db_password"),
    ("postgres", {"postgres_db_password": "changeme"}, "postgres_db_password"),
    ("postgres", {"postgres_port": 70000}, "postgres_port"),
    ("postgres", {"postgres_port": "five"}, "postgres_port"),
    ("postgres", {"postgres_client_networks": ["10.0.0.0"]}, "postgres_client_networks"),
    ("postgres", {"postgres_backup_keep": 0}, "postgres_backup_keep"),
    ("mlflow_server", {"mlflow_server_backend": "oracle"}, "mlflow_server_backend"),
    ("mlflow_server", {"mlflow_server_backend": "postgresql"}, "mlflow_server_db_password"),
    (
        "mlflow_server",
        {"mlflow_server_backend": "postgresql", "mlflow_server_backend_store_uri": "mysql://u:p@h/db"},
        "mlflow_server_backend_store_uri",
    ),
    ("mlflow_server", {"mlflow_server_version": "2.9.0"}, "mlflow_server_version"),
    # Below the security floor (advisories up to 3.12), though its lock file ships for upgrades.
    ("mlflow_server", {"mlflow_server_version": "3.10.1"}, "mlflow_server_version"),
    ("mlflow_server", {"mlflow_server_db_options": {"ssl mode": "require"}}, "mlflow_server_db_options"),
    ("mlflow_server", {"mlflow_server_db_options": {"sslmode": ["require"]}}, "mlflow_server_db_options"),
    ("mlflow_server", {"mlflow_server_db_options": {"sslmode": {"a": 1}}}, "mlflow_server_db_options"),
    ("mlflow_server", {"mlflow_server_version": "3.99.0"}, "mlflow_server_version"),
    ("mlflow_server", {"mlflow_server_port": 0}, "mlflow_server_port"),
    (
        "mlflow_server",
        {"mlflow_server_artifacts_destination": "s3://Bad_Bucket/x"},
        "mlflow_server_artifacts_destination",
    ),
    ("mlflow_server", {"mlflow_server_artifacts_destination": "relative/dir"}, "mlflow_server_artifacts_destination"),
    ("mlflow_server", {"mlflow_server_s3_access_key": "AKIAONLY"}, "mlflow_server_s3_access_key"),
    ("mlflow_server", {"mlflow_server_service_manager": "upstart"}, "mlflow_server_service_manager"),
    ("mlflow_server", {**AUTH, "mlflow_server_auth_admin_password": ""}, "mlflow_server_auth_admin_password"),
    (
        "mlflow_server",
        {**AUTH, "mlflow_server_auth_admin_password": "password1234"},
        "mlflow_server_auth_admin_password",
    ),
    ("mlflow_server", {**AUTH, "mlflow_server_auth_secret_key": "too-short"}, "mlflow_server_auth_secret_key"),
    (
        "mlflow_server",
        {**AUTH, "mlflow_server_auth_default_permission": "ADMIN"},
        "mlflow_server_auth_default_permission",
    ),
    (
        "mlflow_server",
        {**AUTH, "mlflow_server_auth_users": [{"name": "alice", "password": "short"}]},
        "mlflow_server_auth_users",
    ),
    (
        "mlflow_server",
        {**AUTH, "mlflow_server_auth_users": [{"name": "al:ice", "password": "a-long-enough-password"}]},
        "mlflow_server_auth_users",
    ),
    ("mlflow_server", {"mlflow_server_sqlite_backup_keep": 0}, "mlflow_server_sqlite_backup_keep"),
    ("mlflow_server", {"mlflow_server_sqlite_backup_dir": "backups"}, "mlflow_server_sqlite_backup_dir"),
    (
        "mlflow_server",
        {
            "mlflow_server_sqlite_backup_enabled": True,
            "mlflow_server_backend": "postgresql",
            "mlflow_server_db_password": "a-good-db-password",
        },
        "mlflow_server_sqlite_backup_enabled",
    ),
    (
        "mlflow_server",
        {"mlflow_server_sqlite_backup_enabled": True, "mlflow_server_service_manager": "cron"},
        "mlflow_server_sqlite_backup_enabled",
    ),
    ("mlflow_server", {"mlflow_server_gc_older_than": "30 days"}, "mlflow_server_gc_older_than"),
    ("mlflow_server", {"mlflow_server_gc_older_than": "2h1d"}, "mlflow_server_gc_older_than"),
    ("mlflow_server", {"mlflow_server_gc_older_than": ""}, "mlflow_server_gc_older_than"),
    (
        "mlflow_server",
        {"mlflow_server_gc_enabled": True, "mlflow_server_service_manager": "cron"},
        "mlflow_server_gc_enabled",
    ),
    ("nginx_proxy", {"nginx_proxy_users": []}, "nginx_proxy_users"),
    ("nginx_proxy", {"nginx_proxy_users": [{"name": "alice", "password": "short"}]}, "nginx_proxy_users"),
    ("nginx_proxy", {"nginx_proxy_users": [{"name": "a:b", "password": "a-good-password"}]}, "nginx_proxy_users"),
    ("nginx_proxy", {"nginx_proxy_upstreams": ["no-port"]}, "nginx_proxy_upstreams"),
    ("nginx_proxy", {"nginx_proxy_upstream_keepalive": -1}, "nginx_proxy_upstream_keepalive"),
    ("nginx_proxy", {"nginx_proxy_stream_buffer_size": "1k"}, "nginx_proxy_stream_buffer_size"),
    ("nginx_proxy", {"nginx_proxy_stream_buffer_size": "lots"}, "nginx_proxy_stream_buffer_size"),
    ("nginx_proxy", {"nginx_proxy_hash_scheme": "md5"}, "nginx_proxy_hash_scheme"),
    ("nginx_proxy", {"nginx_proxy_tls_certificate": "/etc/ssl/x.pem"}, "nginx_proxy_tls_certificate"),
    ("s3_iam", {"s3_iam_bucket": "Not_A_Bucket"}, "s3_iam_bucket"),
    ("s3_iam", {"s3_iam_prefix": "/leading/slash"}, "s3_iam_prefix"),
    ("s3_iam", {"s3_iam_mode": "instance_profile"}, "s3_iam_instance_role"),
    ("s3_iam", {"s3_iam_mode": "root_keys"}, "s3_iam_mode"),
    ("reconverge", {"reconverge_source": "svn"}, "reconverge_source"),
    ("reconverge", {"reconverge_source": "pull"}, "reconverge_git_url"),
    ("reconverge", {"reconverge_log_keep": 0}, "reconverge_log_keep"),
    ("object_store", {"object_store_backend": "ceph"}, "object_store_backend"),
    ("object_store", {"object_store_bucket": "Bad_Bucket"}, "object_store_bucket"),
    ("object_store", {"object_store_bucket": "192.168.0.1"}, "object_store_bucket"),
    ("object_store", {"object_store_admin_secret_key": "short"}, "object_store_admin_secret_key"),
    ("object_store", {"object_store_mlflow_access_key": "ADMINKEY01"}, "object_store_mlflow_access_key"),
    ("object_store", {"object_store_s3_port": 99999}, "object_store_s3_port"),
    ("object_store", {"object_store_backend": "minio"}, "object_store_minio_binary"),
    (
        "object_store",
        {"object_store_seaweedfs_url": "https://example.invalid/weed.tgz"},
        "object_store_seaweedfs_sha256",
    ),
    ("object_store", {"object_store_seaweedfs_memory_limit_mb": 16}, "object_store_seaweedfs_memory_limit_mb"),
    ("object_store", {"object_store_seaweedfs_memory_limit_mb": "lots"}, "object_store_seaweedfs_memory_limit_mb"),
    # Weak secrets (mlops.mlflow.weak_secret): long enough, but an unfilled vault template or a
    # placeholder in disguise. Each role refuses them naming the variable, never printing the value.
    ("postgres", {"postgres_db_password": "<db password>"}, "postgres_db_password"),
    ("postgres", {"postgres_db_password": "Change-Me-2024!"}, "postgres_db_password"),
    (
        "mlflow_server",
        {"mlflow_server_backend": "postgresql", "mlflow_server_db_password": "Password-2024"},
        "mlflow_server_db_password",
    ),
    (
        "mlflow_server",
        {"mlflow_server_s3_access_key": "AKIAIOSFODNN7EXAMPLE", "mlflow_server_s3_secret_key": AWS_EXAMPLE_SECRET},
        "mlflow_server_s3_secret_key",
    ),
    (
        "mlflow_server",
        {**AUTH, "mlflow_server_auth_secret_key": "<a Flask secret key of 32+ characters>"},
        "mlflow_server_auth_secret_key",
    ),
    (
        "mlflow_server",
        {**AUTH, "mlflow_server_auth_users": [{"name": "alice", "password": "changeme-123456"}]},
        "mlflow_server_auth_users",
    ),
    ("nginx_proxy", {"nginx_proxy_users": [{"name": "alice", "password": "<alice's password>"}]}, "nginx_proxy_users"),
    ("object_store", {"object_store_admin_secret_key": "MinioAdmin-2024!"}, "object_store_admin_secret_key"),
    ("object_store", {"object_store_mlflow_secret_key": "<mlflow secret key>"}, "object_store_mlflow_secret_key"),
    (
        "s3_iam",
        {"s3_iam_admin_access_key": "AKIAIOSFODNN7EXAMPLE", "s3_iam_admin_secret_key": AWS_EXAMPLE_SECRET},
        "s3_iam_admin_secret_key",
    ),
]
SAFE_TASK_PREFIXES = ("Validating arguments", "Check ")
# Preflight asserts print only the expression and our message, never a secret's
# value, so they carry no no_log: the message naming the variable must be visible.
SECRETS = (
    "a-good-db-password",
    "a-good-password",
    "a-good-admin-secret",
    "a-good-mlflow-secret",
    "a-good-admin-password",
    "a-good-flask-secret-key-0123456789abcdef",
    "a-long-enough-password",
    # The weak ones are refused without being shown either.
    "<db password>",
    "Change-Me-2024!",
    "Password-2024",
    AWS_EXAMPLE_SECRET,
    "<a Flask secret key of 32+ characters>",
    "changeme-123456",
    "<alice's password>",
    "MinioAdmin-2024!",
    "<mlflow secret key>",
)


def _run_role(role: str, extra: dict, tmp_path: Path) -> dict:
    play = {"name": "bad input", "hosts": "localhost", "gather_facts": False, "roles": [f"mlops.mlflow.{role}"]}
    proc = run_playbook([play], tmp_path, variables={**GOOD[role], **extra}, check=True)
    assert proc.returncode != 0, f"bad input was accepted:\n{proc.stdout[-2000:]}"
    return json.loads(proc.stdout)


@pytest.mark.parametrize(("role", "bad", "variable"), CASES, ids=[f"{c[0]}-{next(iter(c[1]))}" for c in CASES])
def test_bad_input_fails_early_naming_the_variable(role, bad, variable, tmp_path):
    report = _run_role(role, bad, tmp_path)
    tasks = report["plays"][0]["tasks"]
    failed = [t for t in tasks if t["hosts"]["localhost"].get("failed")]
    assert len(failed) == 1
    task = failed[0]["task"]["name"].split(" : ", 1)[-1]
    result = failed[0]["hosts"]["localhost"]
    assert task.startswith(SAFE_TASK_PREFIXES), f"failed late, in task {task!r}"
    assert not any(t["hosts"]["localhost"].get("changed") for t in tasks)
    assert variable in json.dumps(result), result
    assert not any(secret in json.dumps(report) for secret in SECRETS)


# Set by mlops.mlflow.site from a knob of the user's (the layout's mlops_layout_origins): the same
# checks name the knob the user wrote, not the role variable it became.
FROM_KNOBS = [
    ("postgres", {"postgres_db_password": "short"}, "mlops_db_password"),
    ("object_store", {"object_store_mlflow_secret_key": "short"}, "mlops_s3_mlflow_secret_key"),
    ("mlflow_server", {"mlflow_server_gc_older_than": "30 days"}, "mlops_gc_older_than"),
    ("s3_iam", {"s3_iam_prefix": "/artifacts/"}, "mlops_s3_prefix"),
]


@pytest.mark.parametrize(("role", "bad", "knob"), FROM_KNOBS, ids=[c[2] for c in FROM_KNOBS])
def test_a_value_the_layout_set_fails_naming_the_users_knob(role, bad, knob, tmp_path):
    (variable,) = bad
    report = _run_role(role, {**bad, "mlops_layout_origins": {variable: knob}}, tmp_path)
    tasks = report["plays"][0]["tasks"]
    (failed,) = [t["hosts"]["localhost"] for t in tasks if t["hosts"]["localhost"].get("failed")]
    assert failed["msg"].startswith(knob + " "), failed["msg"]
    assert variable not in failed["msg"]
    assert not any(t["hosts"]["localhost"].get("changed") for t in tasks)
