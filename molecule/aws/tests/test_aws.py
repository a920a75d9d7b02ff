"""The AWS layout from site.yml: mlflow and nginx on the "EC2" host, PostgreSQL "RDS" by URI
only, artifacts in a bucket that the s3_iam role created (in moto) with one access key."""

import json
import os
from pathlib import Path

import boto3
import pytest
import testinfra

testinfra_hosts = ["ansible://mlops-aws-ec2"]

MOTO = "http://10.231.20.30:5000"
BUCKET = "mlops-aws-artifacts"
CLIENT_ENV = (
    "MLFLOW_TRACKING_USERNAME=alice MLFLOW_TRACKING_PASSWORD=aws-alice-password-01 MLFLOW_TRACKING_INSECURE_TLS=true"
)


@pytest.fixture(scope="module")
def stored_key() -> dict:
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "s3-iam-mlflow.json"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def rds(request):
    return testinfra.get_host("ansible://mlops-aws-rds", ansible_inventory=request.config.option.ansible_inventory)


def _admin(service: str):
    return boto3.client(
        service,
        endpoint_url=MOTO,
        region_name="us-east-1",
        aws_access_key_id="MOTOADMIN0000001",
        aws_secret_access_key="moto-admin-secret-0001",
    )


def test_server_gets_the_database_only_by_uri(host):
    env = host.file("/etc/mlflow/mlflow-server.env").content_string
    uri = "postgresql+psycopg2://mlflow:aws-rds-secret-0001@10.231.20.20:5432/mlflow?sslmode=require"
    assert f"MLFLOW_BACKEND_STORE_URI='{uri}'" in env
    assert not host.package("postgresql").is_installed
    assert not [line for line in host.check_output("ss -Hltn").splitlines() if line.split()[3].endswith(":5432")]


def test_server_uses_the_one_key_of_the_iam_user(host, stored_key):
    env = host.file("/etc/mlflow/mlflow-server.env").content_string
    assert f"MLFLOW_ARTIFACTS_DESTINATION='s3://{BUCKET}/artifacts'" in env
    assert f"MLFLOW_S3_ENDPOINT_URL='{MOTO}'" in env
    assert f"AWS_ACCESS_KEY_ID='{stored_key['access_key_id']}'" in env
    keys = _admin("iam").list_access_keys(UserName="mlflow")["AccessKeyMetadata"]
    assert [key["AccessKeyId"] for key in keys] == [stored_key["access_key_id"]]
    assert _admin("iam").list_user_policies(UserName="mlflow")["PolicyNames"] == ["mlflow-artifacts"]


def test_bucket_is_private_and_encrypted():
    s3 = _admin("s3")
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block.values()), block
    rules = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_real_client_through_nginx_into_the_bucket(mlflow_smoke):
    result = mlflow_smoke("both", "aws", uri="https://localhost", env=CLIENT_ENV)
    run_id = result["written"]["run_id"]
    keys = [obj["Key"] for obj in _admin("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert any(key.startswith("artifacts/") and run_id in key and key.endswith("/weights.bin") for key in keys), keys
    assert result["read"]["model_versions"] == 1


def test_mlflow_reaches_the_database_over_tls(rds):
    ssl = rds.check_output(
        "runuser -u postgres -- psql -XAtc "
        "\"select distinct s.ssl from pg_stat_ssl s join pg_stat_activity a using (pid) where a.usename = 'mlflow'\""
    )
    assert ssl.split() == ["t"]
