"""The s3_iam role against moto server: private bucket, least-privilege user, exactly one key."""

from __future__ import annotations

import json
import subprocess

import boto3
import pytest
from conftest import run_playbook
from support.s3_servers import moto_s3  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

BUCKET = "acme-mlflow-artifacts"


def converge(moto, tmp_path, **extra) -> subprocess.CompletedProcess:
    play = {
        "name": "s3_iam against moto",
        "hosts": "localhost",
        "gather_facts": False,
        "roles": ["mlops.mlflow.s3_iam"],
        "tasks": [
            {
                "name": "Show the key id the mlflow server gets",
                "ansible.builtin.debug": {"msg": "key={{ s3_iam_access_key_id }}"},
            }
        ],
    }
    variables = {
        "s3_iam_bucket": BUCKET,
        "s3_iam_endpoint_url": moto.endpoint_url,
        "s3_iam_admin_access_key": moto.access_key,
        "s3_iam_admin_secret_key": moto.secret_key,
        "s3_iam_credentials_file": str(tmp_path / "creds" / "mlflow.json"),
        **extra,
    }
    return run_playbook([play], tmp_path, variables=variables, json_output=False)


def iam_client(moto):
    return boto3.client(
        "iam",
        endpoint_url=moto.endpoint_url,
        aws_access_key_id=moto.access_key,
        aws_secret_access_key=moto.secret_key,
        region_name="us-east-1",
    )


def recap_changed(output: str) -> int:
    line = next(line for line in output.splitlines() if line.startswith("localhost") and "changed=" in line)
    return int(line.split("changed=")[1].split()[0])


def test_bucket_user_policy_and_one_key(moto_s3, tmp_path):  # noqa: F811
    first = converge(moto_s3, tmp_path)
    assert first.returncode == 0, first.stdout[-3000:]
    creds_file = tmp_path / "creds" / "mlflow.json"
    creds = json.loads(creds_file.read_text())
    assert oct(creds_file.stat().st_mode & 0o777) == "0o600"
    assert creds["secret_access_key"] not in first.stdout + first.stderr

    iam = iam_client(moto_s3)
    keys = iam.list_access_keys(UserName="mlflow")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [creds["access_key_id"]]
    assert f"key={creds['access_key_id']}" in first.stdout

    policy = iam.get_user_policy(UserName="mlflow", PolicyName="mlflow-artifacts")["PolicyDocument"]
    if isinstance(policy, str):
        policy = json.loads(policy)
    assert policy["Statement"] == [
        {
            "Sid": "ListArtifactPrefix",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{BUCKET}"],
            "Condition": {"StringLike": {"s3:prefix": ["artifacts", "artifacts/*"]}},
        },
        {
            "Sid": "ObjectsUnderArtifactPrefix",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": [f"arn:aws:s3:::{BUCKET}/artifacts/*"],
        },
    ]

    s3 = moto_s3.client()
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    rules = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    second = converge(moto_s3, tmp_path)
    assert second.returncode == 0, second.stdout[-3000:]
    assert recap_changed(second.stdout) == 0
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName="mlflow")["AccessKeyMetadata"]] == [
        creds["access_key_id"]
    ]
    assert json.loads(creds_file.read_text()) == creds


def test_lost_credentials_file_never_creates_a_second_key(moto_s3, tmp_path):  # noqa: F811
    assert converge(moto_s3, tmp_path, s3_iam_user="lostkey").returncode == 0
    (tmp_path / "creds" / "mlflow.json").unlink()
    again = converge(moto_s3, tmp_path, s3_iam_user="lostkey")
    assert again.returncode != 0
    assert "does not hold one of them" in again.stdout
    iam = iam_client(moto_s3)
    assert len(iam.list_access_keys(UserName="lostkey")["AccessKeyMetadata"]) == 1
