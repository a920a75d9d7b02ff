"""mlops.mlflow.s3_bucket against real S3 servers: SeaweedFS (`weed`) and moto server.

Every behaviour test runs on both servers (``s3`` is parametrized over the two session
fixtures of support.s3_servers). What the servers really do, as found by these tests:

* SeaweedFS 4.x: policy, versioning and default encryption are implemented; the public
  access block answers 501 NotImplemented (the module skips and reports it). Bucket
  policies are enforced for principals written as ``arn:aws:iam::<any>:user/<identity>``.
  An identity without rights on a bucket gets 403 on it (and on HEAD), so "someone
  else's bucket" is a clear AccessDenied failure.
* moto: everything is implemented; with IAM auth on, a wrong secret gives
  SignatureDoesNotMatch and a user without S3 rights gets AccessDenied. moto accepts any
  policy text (it does not validate or enforce bucket policies).
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError
from conftest import find_free_port
from support.s3_servers import moto_s3, seaweedfs_s3  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture(params=["seaweedfs", "moto"])
def s3(request):
    return request.getfixturevalue(f"{request.param}_s3")


@pytest.fixture
def bucket(s3):
    name = f"it-{uuid.uuid4().hex[:12]}"
    yield name
    s3.empty_and_delete(name)


def _code(call) -> str:
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"]
    return "OK"


def _policy_in_bucket(s3, bucket):
    try:
        return json.loads(s3.client().get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchBucketPolicy"
        return None


def _read_policy(s3, bucket):
    """Allow the other identity to read; two statements, lists, keys in one order."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OtherGet",
                "Effect": "Allow",
                "Principal": {"AWS": [s3.other.principal]},
                "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
            },
            {
                "Sid": "OtherList",
                "Effect": "Allow",
                "Principal": {"AWS": s3.other.principal},
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
            },
        ],
    }


def _equivalent_variants(policy):
    """The same policy: reordered keys, string<->list swapped, statements reversed, as JSON text."""
    reordered = {
        "Statement": [dict(reversed(list(st.items()))) for st in policy["Statement"]],
        "Version": policy["Version"],
    }
    swapped = json.loads(json.dumps(policy))
    for st in swapped["Statement"]:
        for key in ("Action", "Resource"):
            st[key] = st[key][0] if isinstance(st[key], list) else [st[key]]
        aws = st["Principal"]["AWS"]
        st["Principal"]["AWS"] = aws[0] if isinstance(aws, list) else [aws]
    statements_reversed = dict(policy, Statement=list(reversed(policy["Statement"])))
    return [reordered, swapped, json.dumps(statements_reversed)]


def _assert_clear_failure(result, s3_endpoint, bucket, *fragments):
    assert result.get("failed") is True, result
    msg = result["msg"]
    assert msg.startswith("s3_bucket: "), msg
    assert f"'{bucket}'" in msg and s3_endpoint in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    # ansible-core 2.19 sets exception="(traceback unavailable)" on every failure; no real traceback.
    assert "Traceback (most recent call last)" not in json.dumps(result), result
    assert result.get("exception", "(traceback unavailable)") == "(traceback unavailable)", result


def test_create_check_apply_idempotent(run_module, s3, bucket):
    args = s3.module_args(name=bucket)
    checked = run_module("s3_bucket", args, check=True, diff=True)
    assert checked["changed"] is True, checked
    assert checked["diff"]["before"]["exists"] is False and checked["diff"]["after"]["exists"] is True
    assert not s3.bucket_exists(bucket)

    applied = run_module("s3_bucket", args)
    assert applied["changed"] is True, applied
    assert s3.bucket_exists(bucket)
    assert applied["name"] == bucket and applied["endpoint_url"] == s3.endpoint_url

    again = run_module("s3_bucket", args, diff=True)
    assert again["changed"] is False, again
    assert again["diff"]["before"] == again["diff"]["after"]


def test_policy_semantic_idempotence_and_removal(run_module, s3, bucket):
    policy = _read_policy(s3, bucket)
    checked = run_module("s3_bucket", s3.module_args(name=bucket, policy=policy), check=True)
    assert checked["changed"] is True and not s3.bucket_exists(bucket)

    applied = run_module("s3_bucket", s3.module_args(name=bucket, policy=policy), diff=True)
    assert applied["changed"] is True, applied
    assert applied["diff"]["before"]["policy"] is None and applied["diff"]["after"]["policy"]
    stored = _policy_in_bucket(s3, bucket)
    assert {st["Sid"] for st in stored["Statement"]} == {"OtherGet", "OtherList"}
    assert applied["policy"]["Statement"][0]["Action"] == ["s3:GetObject"]

    for variant in [policy, *_equivalent_variants(policy)]:
        again = run_module("s3_bucket", s3.module_args(name=bucket, policy=variant))
        assert again["changed"] is False, (variant, again)

    # A changed Sid is a change.
    renamed = json.loads(json.dumps(policy))
    renamed["Statement"][0]["Sid"] = "OtherRead"
    assert run_module("s3_bucket", s3.module_args(name=bucket, policy=renamed))["changed"] is True

    removed_check = run_module("s3_bucket", s3.module_args(name=bucket, policy={}), check=True)
    assert removed_check["changed"] is True and _policy_in_bucket(s3, bucket) is not None
    removed = run_module("s3_bucket", s3.module_args(name=bucket, policy={}), diff=True)
    assert removed["changed"] is True and removed["policy"] is None
    assert removed["diff"]["after"]["policy"] is None
    assert _policy_in_bucket(s3, bucket) is None
    assert run_module("s3_bucket", s3.module_args(name=bucket, policy={}))["changed"] is False


def test_versioning_on_then_idempotent_then_suspended(run_module, s3, bucket):
    s3.client().create_bucket(Bucket=bucket)
    checked = run_module("s3_bucket", s3.module_args(name=bucket, versioning=True), check=True)
    assert checked["changed"] is True and checked["versioning"] == "Enabled"
    assert s3.client().get_bucket_versioning(Bucket=bucket).get("Status") is None

    applied = run_module("s3_bucket", s3.module_args(name=bucket, versioning=True))
    assert applied["changed"] is True and applied["versioning"] == "Enabled"
    assert s3.client().get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert run_module("s3_bucket", s3.module_args(name=bucket, versioning=True))["changed"] is False

    suspended = run_module("s3_bucket", s3.module_args(name=bucket, versioning=False))
    assert suspended["changed"] is True and suspended["versioning"] == "Suspended"
    assert run_module("s3_bucket", s3.module_args(name=bucket, versioning=False))["changed"] is False


def test_encryption_and_public_access_block(run_module, s3, bucket):
    s3.client().create_bucket(Bucket=bucket)
    args = s3.module_args(name=bucket, encryption="AES256")
    applied = run_module("s3_bucket", args)
    assert applied["changed"] is True and applied["encryption"] == {"algorithm": "AES256", "key_id": None}
    rules = s3.client().get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert run_module("s3_bucket", args)["changed"] is False
    removed = run_module("s3_bucket", s3.module_args(name=bucket, encryption="none"))
    assert removed["changed"] is True and removed["encryption"] is None

    block = dict(
        block_public_acls=True, ignore_public_acls=True, block_public_policy=True, restrict_public_buckets=True
    )
    result = run_module("s3_bucket", s3.module_args(name=bucket, public_access_block=block))
    assert result.get("failed") is not True, result
    if s3.kind == "seaweedfs":
        # SeaweedFS answers 501 NotImplemented: skipped, reported, not a change.
        assert result["changed"] is False and result["unsupported"] == ["public_access_block"]
        assert any("public access block" in warning for warning in result.get("warnings", [])), result
    else:
        assert result["changed"] is True and result["unsupported"] == []
        config = s3.client().get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(config.values())
        assert run_module("s3_bucket", s3.module_args(name=bucket, public_access_block=block))["changed"] is False


def test_absent_needs_force_for_a_non_empty_bucket(run_module, s3, bucket):
    s3.client().create_bucket(Bucket=bucket)
    s3.client().put_object(Bucket=bucket, Key="model/weights.bin", Body=b"x" * 10)

    refused = run_module("s3_bucket", s3.module_args(name=bucket, state="absent"))
    _assert_clear_failure(refused, s3.endpoint_url, bucket, "BucketNotEmpty", "force=true")
    assert s3.bucket_exists(bucket)

    checked = run_module("s3_bucket", s3.module_args(name=bucket, state="absent", force=True), check=True)
    assert checked["changed"] is True and s3.bucket_exists(bucket)

    removed = run_module("s3_bucket", s3.module_args(name=bucket, state="absent", force=True))
    assert removed["changed"] is True, removed
    assert not s3.bucket_exists(bucket)
    assert run_module("s3_bucket", s3.module_args(name=bucket, state="absent"))["changed"] is False


def test_wrong_secret_fails_clearly_without_the_secret(run_module, s3, bucket):
    s3.client().create_bucket(Bucket=bucket)
    secret = "wrong-SECRET-value-7f3a9c"
    args = s3.module_args(name=bucket, policy=_read_policy(s3, bucket))
    args["secret_key"] = secret
    result = run_module("s3_bucket", args)
    _assert_clear_failure(result, s3.endpoint_url, bucket, "SignatureDoesNotMatch")
    assert secret not in json.dumps(result)
    assert secret not in result["_stdout"] and secret not in result["_stderr"]


def test_bucket_of_another_identity_fails_clearly(run_module, s3, bucket):
    # The bucket belongs to the admin; the other identity has no rights on it.
    s3.client().create_bucket(Bucket=bucket)
    result = run_module("s3_bucket", s3.module_args(s3.other, name=bucket))
    _assert_clear_failure(result, s3.endpoint_url, bucket, "AccessDenied", "owned by someone else")
    assert s3.other.secret_key not in result["_stdout"]


def test_invalid_policy_text_fails_before_touching_the_endpoint(run_module, s3, bucket):
    result = run_module("s3_bucket", s3.module_args(name=bucket, policy='{"Statement": [oops'))
    _assert_clear_failure(result, s3.endpoint_url, bucket, "MalformedPolicy", "not valid JSON")
    assert not s3.bucket_exists(bucket)


@pytest.mark.optional  # moto takes any policy text: nothing to reject
def test_policy_rejected_by_the_server_fails_clearly(run_module, s3, bucket):
    if s3.kind == "moto":
        pytest.skip("moto stores any policy text without validating it")
    s3.client().create_bucket(Bucket=bucket)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Maybe", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
        ],
    }
    result = run_module("s3_bucket", s3.module_args(name=bucket, policy=policy))
    _assert_clear_failure(result, s3.endpoint_url, bucket, "put policy", "InvalidPolicyDocument")
    assert _policy_in_bucket(s3, bucket) is None


def test_unreachable_endpoint_fails_fast(run_module, s3):
    endpoint = f"http://127.0.0.1:{find_free_port()}"
    args = s3.module_args(name="nowhere-bucket", endpoint_url=endpoint)
    started = time.monotonic()
    result = run_module("s3_bucket", args)
    elapsed = time.monotonic() - started
    _assert_clear_failure(result, endpoint, "nowhere-bucket", "EndpointConnectionError")
    assert elapsed < 20, elapsed


def test_seaweedfs_enforces_the_policy_set_by_the_module(run_module, request):
    s3 = request.getfixturevalue("seaweedfs_s3")
    bucket = f"it-{uuid.uuid4().hex[:12]}"
    try:
        s3.client().create_bucket(Bucket=bucket)
        s3.client().put_object(Bucket=bucket, Key="k", Body=b"data")
        other = s3.client(s3.other)
        assert _code(lambda: other.get_object(Bucket=bucket, Key="k")) == "AccessDenied"

        applied = run_module("s3_bucket", s3.module_args(name=bucket, policy=_read_policy(s3, bucket)))
        assert applied["changed"] is True, applied
        assert other.get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"
        assert other.list_objects_v2(Bucket=bucket)["KeyCount"] == 1
        # Not granted by the policy: writing and deleting stay denied.
        assert _code(lambda: other.put_object(Bucket=bucket, Key="new", Body=b"x")) == "AccessDenied"
        assert _code(lambda: other.delete_object(Bucket=bucket, Key="k")) == "AccessDenied"

        assert run_module("s3_bucket", s3.module_args(name=bucket, policy={}))["changed"] is True
        assert _code(lambda: other.get_object(Bucket=bucket, Key="k")) == "AccessDenied"
    finally:
        s3.empty_and_delete(bucket)
