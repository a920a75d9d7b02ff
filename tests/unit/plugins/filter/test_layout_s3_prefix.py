"""mlops_s3_prefix: the artifacts' key prefix in an AWS bucket reaches both the s3_iam host (its
policy's scope) and the mlflow servers (their artifacts destination)."""

from __future__ import annotations

from ansible_collections.mlops.mlflow.plugins.filter.layout import layout

GROUPS = {"mlflow_server": ["ec2"], "mlflow_proxy": ["ec2"], "mlflow_s3_iam": ["localhost"]}
COMMON = {
    "mlops_users": [{"name": "alice", "password": "alice-password-1"}],
    "mlops_s3_bucket": "team-bucket",
    "mlops_aws_region": "eu-central-1",
}


def _hostvars(**extra):
    return {host: {**COMMON, **extra} for host in ("ec2", "localhost")}


def test_the_prefix_scopes_the_policy_and_the_artifacts_destination():
    hostvars = _hostvars(mlops_s3_prefix="team-a/runs")
    assert layout("localhost", hostvars, GROUPS)["s3_iam_prefix"] == "team-a/runs"
    assert layout("ec2", hostvars, GROUPS)["mlflow_server_artifacts_destination"] == "s3://team-bucket/team-a/runs"


def test_without_it_the_role_default_prefix_applies():
    hostvars = _hostvars()
    assert "s3_iam_prefix" not in layout("localhost", hostvars, GROUPS)
    assert layout("ec2", hostvars, GROUPS)["mlflow_server_artifacts_destination"] == "s3://team-bucket/artifacts"
