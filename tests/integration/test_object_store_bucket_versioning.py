"""object_store_bucket_versioning: the role's bucket step (roles/object_store/tasks/bucket.yml), run
through ansible-playbook against moto server, turns versioning on for the bucket it creates, and
leaves it off by default."""

from __future__ import annotations

import boto3
import pytest
from conftest import REPO_ROOT, run_playbook
from support.role_template import role_vars
from support.s3_servers import moto_s3  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


def _bucket_step(moto, tmp_path, bucket: str, **extra) -> None:
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Run the object_store bucket tasks",
                "ansible.builtin.include_tasks": str(REPO_ROOT / "roles/object_store/tasks/bucket.yml"),
            }
        ],
    }
    variables = {
        **role_vars("object_store"),
        "_object_store_endpoint": moto.endpoint_url,
        "object_store_bucket": bucket,
        "object_store_admin_access_key": moto.access_key,
        "object_store_admin_secret_key": moto.secret_key,
        **extra,
    }
    proc = run_playbook([play], tmp_path, variables=variables)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def _versioning(moto, bucket: str):
    client = boto3.client(
        "s3",
        endpoint_url=moto.endpoint_url,
        aws_access_key_id=moto.access_key,
        aws_secret_access_key=moto.secret_key,
        region_name="us-east-1",
    )
    return client.get_bucket_versioning(Bucket=bucket).get("Status")


def test_versioning_on_when_asked(moto_s3, tmp_path):  # noqa: F811
    _bucket_step(moto_s3, tmp_path, "versioned-artifacts", object_store_bucket_versioning=True)
    assert _versioning(moto_s3, "versioned-artifacts") == "Enabled"


def test_versioning_off_by_default(moto_s3, tmp_path):  # noqa: F811
    _bucket_step(moto_s3, tmp_path, "plain-artifacts")
    assert _versioning(moto_s3, "plain-artifacts") is None
