"""s3_bucket main() with a stubbed boto3 client: pure decisions only (check mode, diff, errors).

What the module really does against S3 servers is proven in tests/integration/test_s3_bucket.py.
"""

from __future__ import annotations

import json

import pytest
from ansible_collections.mlops.mlflow.plugins.module_utils import s3_client
from ansible_collections.mlops.mlflow.plugins.modules import s3_bucket
from botocore.exceptions import ClientError, EndpointConnectionError

SECRET = "super-SECRET-key-0123456789"
TOKEN = "session-TOKEN-abcdef"
ENDPOINT = "http://127.0.0.1:9"
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "A", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
    ],
}


def _client_error(code, message="", status=400, operation="Op"):
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


class FakeS3:
    """Just enough of a boto3 S3 client, recording the writes it receives."""

    def __init__(self, exists=True, policy=None, versioning=None, fail=None):
        self.exists = exists
        self.policy = policy
        self.versioning = versioning
        self.fail = fail or {}
        self.writes = []

    def _maybe_fail(self, name):
        if name in self.fail:
            raise self.fail[name]

    def head_bucket(self, Bucket):
        self._maybe_fail("head_bucket")
        if not self.exists:
            raise _client_error("404", "Not Found", 404)
        return {}

    def get_bucket_location(self, Bucket):
        self._maybe_fail("get_bucket_location")
        return {}

    def get_bucket_policy(self, Bucket):
        self._maybe_fail("get_bucket_policy")
        if self.policy is None:
            raise _client_error("NoSuchBucketPolicy", "none", 404)
        return {"Policy": json.dumps(self.policy)}

    def get_bucket_versioning(self, Bucket):
        return {"Status": self.versioning} if self.versioning else {}

    def get_public_access_block(self, Bucket):
        raise _client_error("NotImplemented", "not implemented", 501)

    def get_bucket_encryption(self, Bucket):
        raise _client_error("ServerSideEncryptionConfigurationNotFoundError", "none", 404)

    def __getattr__(self, name):
        if name.startswith(("create_", "put_", "delete_")):

            def _write(**kwargs):
                self._maybe_fail(name)
                self.writes.append(name)
                return {}

            return _write
        raise AttributeError(name)


@pytest.fixture
def fake(monkeypatch):
    holder = {"client": FakeS3()}
    monkeypatch.setattr(s3_client.S3BucketClient, "_create", lambda self, params: holder["client"])
    return holder


def _args(**extra):
    args = {"name": "b", "endpoint_url": ENDPOINT, "access_key": "AKEXAMPLE", "secret_key": SECRET}
    args.update(extra)
    return args


def test_check_mode_on_missing_bucket_predicts_and_writes_nothing(module_main, fake):
    fake["client"] = FakeS3(exists=False)
    result = module_main(s3_bucket.main, _args(policy=POLICY, versioning=True), check=True, diff=True)
    assert result["changed"] is True and fake["client"].writes == []
    assert result["diff"]["before"]["exists"] is False and result["diff"]["after"]["exists"] is True
    assert result["diff"]["after"]["policy"]["Statement"][0]["Action"] == ["s3:GetObject"]
    assert result["diff"]["after"]["versioning"] == "Enabled"
    assert result["versioning"] == "Enabled"


def test_check_mode_on_existing_bucket_with_a_different_policy(module_main, fake):
    fake["client"] = FakeS3(policy={"Statement": [dict(POLICY["Statement"][0], Sid="Old")]})
    result = module_main(s3_bucket.main, _args(policy=json.dumps(POLICY)), check=True, diff=True)
    assert result["changed"] is True and fake["client"].writes == []
    assert result["diff"]["before"]["policy"]["Statement"][0]["Sid"] == "Old"
    assert result["diff"]["after"]["policy"]["Statement"][0]["Sid"] == "A"


def test_equal_policy_and_unmanaged_settings_are_no_change(module_main, fake):
    stored = {
        "Statement": {
            "Resource": ["arn:aws:s3:::b/*"],
            "Action": ["s3:GetObject"],
            "Principal": "*",
            "Effect": "Allow",
            "Sid": "A",
        }
    }
    fake["client"] = FakeS3(policy=stored, versioning="Enabled")
    result = module_main(s3_bucket.main, _args(policy=POLICY), diff=True)
    assert result["changed"] is False and fake["client"].writes == []
    assert result["diff"]["before"] == result["diff"]["after"]
    assert result["versioning"] == "Enabled" and result["unsupported"] == []


def test_apply_order_and_policy_removal(module_main, fake):
    fake["client"] = FakeS3(policy=POLICY)
    result = module_main(s3_bucket.main, _args(policy={}, versioning=True, encryption="AES256"))
    assert result["changed"] is True and result["policy"] is None
    assert fake["client"].writes == ["put_bucket_versioning", "put_bucket_encryption", "delete_bucket_policy"]


@pytest.mark.parametrize(
    ("current", "wanted", "changed"),
    [
        (None, False, False),
        ("Suspended", False, False),
        ("Enabled", False, True),
        (None, True, True),
        ("Enabled", True, False),
    ],
)
def test_versioning_decision(module_main, fake, current, wanted, changed):
    fake["client"] = FakeS3(versioning=current)
    result = module_main(s3_bucket.main, _args(versioning=wanted), check=True)
    assert result["changed"] is changed


def test_unsupported_feature_is_skipped_and_reported(module_main, fake):
    block = {"block_public_acls": True}
    result = module_main(s3_bucket.main, _args(public_access_block=block))
    assert result["changed"] is False and result["unsupported"] == ["public_access_block"]
    assert fake["client"].writes == []


def test_unrequested_unsupported_feature_is_not_reported(module_main, fake):
    result = module_main(s3_bucket.main, _args())
    assert result["unsupported"] == [] and result["public_access_block"] is None


@pytest.mark.parametrize(
    ("failure", "fragments"),
    [
        (
            {
                "head_bucket": _client_error("403", "", 403),
                "get_bucket_location": _client_error("SignatureDoesNotMatch", f"bad signature for {SECRET}", 403),
            },
            ["access on bucket 'b'", "SignatureDoesNotMatch"],
        ),
        (
            {
                "head_bucket": _client_error("403", "", 403),
                "get_bucket_location": _client_error("AccessDenied", "Access Denied", 403),
            },
            ["owned by someone else"],
        ),
        (
            {"head_bucket": EndpointConnectionError(endpoint_url=ENDPOINT)},
            ["head bucket on bucket 'b'", "EndpointConnectionError"],
        ),
        (
            {"get_bucket_policy": _client_error("InternalError", f"echo {TOKEN} {SECRET}", 500)},
            ["get policy on bucket 'b'", "InternalError"],
        ),
        (
            {"put_bucket_policy": _client_error("MalformedPolicy", "Policy has invalid resource", 400)},
            ["put policy on bucket 'b'", "MalformedPolicy"],
        ),
    ],
    ids=["bad-secret", "someone-elses-bucket", "unreachable", "server-echoes-secret", "invalid-policy"],
)
def test_endpoint_errors_are_one_clear_message_without_secrets(module_main, fake, failure, fragments):
    fake["client"] = FakeS3(fail=failure)
    result = module_main(s3_bucket.main, _args(policy=POLICY, session_token=TOKEN))
    assert result["failed"] is True
    assert result["msg"].startswith("s3_bucket: ") and f"at {ENDPOINT} failed: " in result["msg"]
    for fragment in fragments:
        assert fragment in result["msg"]
    flat = json.dumps(result)
    assert SECRET not in flat and TOKEN not in flat
    assert "exception" not in result


def test_aws_is_named_when_no_endpoint(module_main, fake):
    fake["client"] = FakeS3(
        fail={
            "head_bucket": _client_error("InvalidAccessKeyId", "nope", 403),
            "get_bucket_location": _client_error("InvalidAccessKeyId", "nope", 403),
        }
    )
    result = module_main(s3_bucket.main, _args(endpoint_url=None))
    assert "on bucket 'b' at AWS failed: InvalidAccessKeyId: nope" in result["msg"]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"policy": "{not json"}, "MalformedPolicy: policy is not valid JSON"),
        ({"policy": ["a"]}, "must be a JSON object"),
        (
            {"encryption": "AES256", "encryption_key_id": "k"},
            "InvalidOptions: encryption_key_id needs encryption=aws:kms",
        ),
    ],
)
def test_bad_options_fail_before_any_call(module_main, fake, extra, fragment):
    fake["client"] = FakeS3(fail={"head_bucket": AssertionError("no call expected")})
    result = module_main(s3_bucket.main, _args(**extra))
    assert result["failed"] is True and fragment in result["msg"]
    assert "check options on bucket 'b' at http://127.0.0.1:9" in result["msg"]


def test_absent_refuses_a_non_empty_bucket_without_force(module_main, fake):
    client = FakeS3()
    client.list_objects_v2 = lambda **kw: {"KeyCount": 1, "Contents": [{"Key": "k"}]}
    fake["client"] = client
    result = module_main(s3_bucket.main, _args(state="absent"), check=True)
    assert result["failed"] is True and "BucketNotEmpty" in result["msg"] and client.writes == []


def test_missing_boto3_is_reported(module_main, monkeypatch):
    monkeypatch.setattr(s3_bucket, "HAS_BOTO3", False)
    monkeypatch.setattr(s3_bucket, "BOTO3_IMPORT_ERROR", ImportError("No module named 'boto3'"))
    result = module_main(s3_bucket.main, _args())
    assert result["failed"] is True and "boto3" in result["msg"]
