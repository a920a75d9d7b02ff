#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: s3_bucket
short_description: Ensure an S3 bucket and its policy on AWS or an S3-compatible endpoint
version_added: "0.1.0"
description:
  - Creates or deletes one S3 bucket and manages its bucket policy, versioning, public
    access block and default encryption, on AWS or on any S3-compatible endpoint
    (SeaweedFS, MinIO, Ceph RGW, ...) given by I(endpoint_url).
  - Settings that are not given are left as they are.
  - The policy is compared by meaning, not by text. Key order, a single string versus a
    one-element list (in C(Action), C(NotAction), C(Resource), C(NotResource), C(Principal)
    values and C(Condition) values) and the order of statements never cause a change.
    C(Sid) values are significant; a missing C(Version) counts as C(2012-10-17).
  - When the endpoint does not implement a requested feature (it answers C(NotImplemented),
    HTTP 501, C(MethodNotAllowed) or HTTP 405), that feature is skipped, does not count as
    a change, is listed in RV(unsupported) and a warning is shown. SeaweedFS, for example,
    does not implement the public access block.
  - Every failure of the endpoint ends the task with one message naming the operation, the
    bucket and the endpoint, never a credential.
author:
  - mlops.mlflow maintainers (@mlops-mlflow)
options:
  name:
    description: Name of the bucket.
    type: str
    required: true
    aliases: [bucket]
  state:
    description:
      - C(present) creates the bucket when missing and applies the given settings.
      - C(absent) deletes the bucket; a bucket holding objects is only deleted with I(force=true).
    type: str
    choices: [present, absent]
    default: present
  endpoint_url:
    description:
      - URL of an S3-compatible endpoint, for example C(http://127.0.0.1:8333). Path-style
        addressing is used with it.
      - Omit for AWS S3.
    type: str
  region:
    description: Region of the bucket (and of the client).
    type: str
    default: us-east-1
  access_key:
    description:
      - Access key ID. With I(secret_key); when both are omitted, boto3's usual credential
        chain is used (environment, I(profile), shared files, instance role).
    type: str
    aliases: [aws_access_key_id]
  secret_key:
    description: Secret access key; never logged or returned.
    type: str
    aliases: [aws_secret_access_key]
  session_token:
    description: Session token of temporary credentials; never logged or returned.
    type: str
    aliases: [aws_session_token]
  profile:
    description: Named profile of the AWS shared configuration files.
    type: str
    aliases: [aws_profile]
  validate_certs:
    description: Verify the endpoint's TLS certificate.
    type: bool
    default: true
  ca_bundle:
    description: CA bundle to verify the endpoint's TLS certificate with.
    type: path
  policy:
    description:
      - Bucket policy, as a dict or as JSON text.
      - Omitted leaves the policy as it is; C({}) removes it.
    type: raw
  versioning:
    description:
      - C(true) enables versioning; C(false) suspends it when it was enabled (a bucket that
        never had versioning stays unversioned).
      - Omitted leaves it as it is.
    type: bool
  public_access_block:
    description:
      - The bucket's public access block. Omitted leaves it as it is.
      - A setting not given counts as C(false); all four C(false) equals no configuration.
    type: dict
    suboptions:
      block_public_acls:
        description: Reject requests that add public ACLs (C(BlockPublicAcls)).
        type: bool
        default: false
      ignore_public_acls:
        description: Ignore public ACLs on the bucket and its objects (C(IgnorePublicAcls)).
        type: bool
        default: false
      block_public_policy:
        description: Reject bucket policies that grant public access (C(BlockPublicPolicy)).
        type: bool
        default: false
      restrict_public_buckets:
        description: Restrict access to a bucket with a public policy (C(RestrictPublicBuckets)).
        type: bool
        default: false
  encryption:
    description:
      - Default server-side encryption of new objects. C(none) removes the configuration.
      - Omitted leaves it as it is.
      - On AWS every bucket is encrypted with C(AES256) by default and C(none) cannot stick;
        use C(AES256) or C(aws:kms) there.
    type: str
    choices: [none, AES256, "aws:kms"]
  encryption_key_id:
    description:
      - KMS key ID or ARN for I(encryption=aws:kms). When omitted, any KMS key counts as
        matching and a new configuration uses the endpoint's default key.
    type: str
  force:
    description:
      - With I(state=absent), delete all objects (and object versions) first.
      - When false, a bucket that holds objects is not deleted and the task fails.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only probes of the endpoint decide what would change; nothing is written.
  diff_mode:
    support: full
    details: >-
      The diff shows the bucket's managed settings (existence, policy, versioning,
      public access block, encryption) before and after.
  platform:
    support: full
    platforms: posix
notes:
  - Credentials are never returned; RV(endpoint_url) is returned as given.
  - Features the endpoint does not implement are only reported when the task asks to manage them.
requirements:
  - boto3
  - botocore
seealso:
  - name: Bucket policy examples
    description: AWS documentation of bucket policies.
    link: https://docs.aws.amazon.com/AmazonS3/latest/userguide/example-bucket-policies.html
"""

EXAMPLES = r"""
- name: Ensure the artifact bucket on a SeaweedFS endpoint, readable by the mlflow identity
  mlops.mlflow.s3_bucket:
    name: mlflow-artifacts
    endpoint_url: http://127.0.0.1:8333
    access_key: "{{ vault_s3_admin_access_key }}"
    secret_key: "{{ vault_s3_admin_secret_key }}"
    versioning: true
    policy:
      Version: "2012-10-17"
      Statement:
        - Sid: MlflowReadWrite
          Effect: Allow
          Principal:
            AWS: arn:aws:iam::000000000000:user/mlflow
          Action: [s3:GetObject, s3:PutObject, s3:ListBucket]
          Resource:
            - arn:aws:s3:::mlflow-artifacts
            - arn:aws:s3:::mlflow-artifacts/*

- name: Ensure an AWS bucket with encryption and a public access block (credentials from the environment)
  mlops.mlflow.s3_bucket:
    name: example-mlflow-artifacts
    region: eu-west-1
    encryption: AES256
    public_access_block:
      block_public_acls: true
      ignore_public_acls: true
      block_public_policy: true
      restrict_public_buckets: true

- name: Remove the bucket policy
  mlops.mlflow.s3_bucket:
    name: mlflow-artifacts
    endpoint_url: http://127.0.0.1:8333
    policy: {}

- name: Delete the bucket and everything in it
  mlops.mlflow.s3_bucket:
    name: mlflow-artifacts
    endpoint_url: http://127.0.0.1:8333
    state: absent
    force: true
"""

RETURN = r"""
name:
  description: The bucket.
  returned: always
  type: str
  sample: mlflow-artifacts
endpoint_url:
  description: The endpoint, as given (null for AWS). Never contains credentials.
  returned: always
  type: str
  sample: http://127.0.0.1:8333
policy:
  description:
    - The bucket policy after the task, normalised (sorted keys, lists, sorted statements), or null for none.
    - In check mode, the policy the bucket would have.
  returned: always
  type: dict
  sample: {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"]}]}
versioning:
  description: Versioning status after the task; null for a bucket that never had versioning (or no bucket).
  returned: always
  type: str
  sample: Enabled
  choices: [Enabled, Suspended]
public_access_block:
  description: The public access block after the task, or null when none is set or the endpoint lacks it.
  returned: always
  type: dict
  sample:
    block_public_acls: true
    ignore_public_acls: true
    block_public_policy: true
    restrict_public_buckets: true
encryption:
  description: Default encryption after the task (C(algorithm), C(key_id)), or null for none.
  returned: always
  type: dict
  sample: {"algorithm": "AES256", "key_id": null}
unsupported:
  description: Requested features the endpoint does not implement and that were skipped.
  returned: always
  type: list
  elements: str
  sample: [public_access_block]
"""

import json

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.mlops.mlflow.plugins.module_utils.s3_client import (
    BOTO3_IMPORT_ERROR,
    HAS_BOTO3,
    S3BucketClient,
    S3Error,
    S3Unsupported,
)
from ansible_collections.mlops.mlflow.plugins.module_utils.s3_policy import (
    PolicyError,
    load_policy,
    normalize_policy,
    policies_equal,
    policy_from_text,
)

FEATURES = ("policy", "versioning", "public_access_block", "encryption")
PAB_KEYS = (
    ("block_public_acls", "BlockPublicAcls"),
    ("ignore_public_acls", "IgnorePublicAcls"),
    ("block_public_policy", "BlockPublicPolicy"),
    ("restrict_public_buckets", "RestrictPublicBuckets"),
)
_NO_PAB = dict((key, False) for key, _aws in PAB_KEYS)


class InputError(Exception):
    """Options that cannot work together."""


def argument_spec():
    return dict(
        name=dict(type="str", required=True, aliases=["bucket"]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        endpoint_url=dict(type="str"),
        region=dict(type="str", default="us-east-1"),
        access_key=dict(type="str", aliases=["aws_access_key_id"], no_log=False),
        secret_key=dict(type="str", no_log=True, aliases=["aws_secret_access_key"]),
        session_token=dict(type="str", no_log=True, aliases=["aws_session_token"]),
        profile=dict(type="str", aliases=["aws_profile"]),
        validate_certs=dict(type="bool", default=True),
        ca_bundle=dict(type="path"),
        policy=dict(type="raw"),
        versioning=dict(type="bool"),
        public_access_block=dict(
            type="dict",
            options=dict((key, dict(type="bool", default=False)) for key, _aws in PAB_KEYS),
        ),
        encryption=dict(type="str", choices=["none", "AES256", "aws:kms"]),
        encryption_key_id=dict(type="str", no_log=False),
        force=dict(type="bool", default=False),
    )


# --------------------------------------------------------------------------- desired state


def desired_settings(params):
    """The settings the task asks for, keyed by feature (absent key = leave as is)."""
    wanted = {}
    policy = load_policy(params["policy"])
    if policy is not None:
        wanted["policy"] = normalize_policy(policy)
    if params["versioning"] is not None:
        wanted["versioning"] = params["versioning"]
    if params["public_access_block"] is not None:
        wanted["public_access_block"] = dict((key, bool(params["public_access_block"][key])) for key, _aws in PAB_KEYS)
    if params["encryption"] is not None:
        if params["encryption_key_id"] and params["encryption"] != "aws:kms":
            raise InputError("encryption_key_id needs encryption=aws:kms")
        if params["encryption"] == "none":
            wanted["encryption"] = None
        else:
            wanted["encryption"] = {"algorithm": params["encryption"], "key_id": params["encryption_key_id"]}
    elif params["encryption_key_id"]:
        raise InputError("encryption_key_id needs encryption=aws:kms")
    return wanted


def versioning_after(current, wanted):
    """Versioning status after applying ``wanted`` (bool) to ``current`` (None/Enabled/Suspended)."""
    if wanted:
        return "Enabled"
    return "Suspended" if current == "Enabled" else current


def encryption_matches(current, wanted):
    if wanted is None or current is None:
        return wanted == current
    if current["algorithm"] != wanted["algorithm"]:
        return False
    return wanted.get("key_id") is None or current.get("key_id") == wanted["key_id"]


def plan_changes(current, wanted):
    """Return (features to change, settings after) for a bucket whose settings are ``current``."""
    changes = []
    after = dict(current)
    if "policy" in wanted and not policies_equal(current["policy"], wanted["policy"]):
        changes.append("policy")
        after["policy"] = wanted["policy"]
    if "versioning" in wanted:
        status = versioning_after(current["versioning"], wanted["versioning"])
        if status != current["versioning"]:
            changes.append("versioning")
            after["versioning"] = status
    if "public_access_block" in wanted:
        have = current["public_access_block"] or _NO_PAB
        if have != wanted["public_access_block"]:
            changes.append("public_access_block")
            after["public_access_block"] = (
                None if wanted["public_access_block"] == _NO_PAB else wanted["public_access_block"]
            )
    if "encryption" in wanted and not encryption_matches(current["encryption"], wanted["encryption"]):
        changes.append("encryption")
        after["encryption"] = wanted["encryption"]
    return changes, after


def empty_settings():
    return dict(exists=False, policy=None, versioning=None, public_access_block=None, encryption=None)


# --------------------------------------------------------------------------- endpoint I/O


def _read_policy(s3):
    answer = s3.call_allowing("get policy", "get_bucket_policy", ("NoSuchBucketPolicy",), Bucket=s3.bucket)
    if answer is None:
        return None
    try:
        return normalize_policy(policy_from_text(answer.get("Policy")))
    except PolicyError as exc:
        raise s3.fail("get policy", "MalformedPolicy", to_native(exc)) from None


def _read_versioning(s3):
    return s3.call("get versioning", "get_bucket_versioning", Bucket=s3.bucket).get("Status") or None


def _read_public_access_block(s3):
    answer = s3.call_allowing(
        "get public access block",
        "get_public_access_block",
        ("NoSuchPublicAccessBlockConfiguration",),
        Bucket=s3.bucket,
    )
    if answer is None:
        return None
    config = answer.get("PublicAccessBlockConfiguration", {})
    return dict((key, bool(config.get(aws, False))) for key, aws in PAB_KEYS)


def _read_encryption(s3):
    answer = s3.call_allowing(
        "get encryption",
        "get_bucket_encryption",
        ("ServerSideEncryptionConfigurationNotFoundError", "NoSuchEncryptionConfiguration"),
        Bucket=s3.bucket,
    )
    if answer is None:
        return None
    rules = answer.get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    for rule in rules:
        default = rule.get("ApplyServerSideEncryptionByDefault")
        if default:
            return {"algorithm": default.get("SSEAlgorithm"), "key_id": default.get("KMSMasterKeyID")}
    return None


_READERS = (
    ("policy", _read_policy),
    ("versioning", _read_versioning),
    ("public_access_block", _read_public_access_block),
    ("encryption", _read_encryption),
)


def read_settings(s3):
    """Current settings of an existing bucket, and the features the endpoint lacks."""
    current = empty_settings()
    current["exists"] = True
    unsupported = []
    for feature, reader in _READERS:
        try:
            current[feature] = reader(s3)
        except S3Unsupported:
            unsupported.append(feature)
    return current, unsupported


def create_bucket(s3, region):
    kwargs = dict(Bucket=s3.bucket)
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.call_allowing("create", "create_bucket", ("BucketAlreadyOwnedByYou",), **kwargs)
    except S3Unsupported as exc:
        raise s3.fail("create", exc.code, "the endpoint refused to create the bucket") from None
    except S3Error as exc:
        if exc.code == "BucketAlreadyExists":
            raise s3.fail("create", exc.code, "the bucket name is taken by someone else") from None
        raise


def apply_change(s3, feature, after):
    value = after[feature]
    if feature == "policy":
        if value is None:
            s3.call("delete policy", "delete_bucket_policy", Bucket=s3.bucket)
        else:
            s3.call("put policy", "put_bucket_policy", Bucket=s3.bucket, Policy=json.dumps(value, sort_keys=True))
    elif feature == "versioning":
        s3.call(
            "put versioning",
            "put_bucket_versioning",
            Bucket=s3.bucket,
            VersioningConfiguration={"Status": value},
        )
    elif feature == "public_access_block":
        if value is None:
            s3.call("delete public access block", "delete_public_access_block", Bucket=s3.bucket)
        else:
            config = dict((aws, value[key]) for key, aws in PAB_KEYS)
            s3.call(
                "put public access block",
                "put_public_access_block",
                Bucket=s3.bucket,
                PublicAccessBlockConfiguration=config,
            )
    elif feature == "encryption":
        if value is None:
            s3.call("delete encryption", "delete_bucket_encryption", Bucket=s3.bucket)
        else:
            default = {"SSEAlgorithm": value["algorithm"]}
            if value.get("key_id"):
                default["KMSMasterKeyID"] = value["key_id"]
            s3.call(
                "put encryption",
                "put_bucket_encryption",
                Bucket=s3.bucket,
                ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": default}]},
            )


def bucket_has_objects(s3):
    listed = s3.call("list objects", "list_objects_v2", Bucket=s3.bucket, MaxKeys=1)
    if listed.get("KeyCount") or listed.get("Contents"):
        return True
    try:
        versions = s3.call("list object versions", "list_object_versions", Bucket=s3.bucket, MaxKeys=1)
    except S3Unsupported:
        return False
    return bool(versions.get("Versions") or versions.get("DeleteMarkers"))


def _delete_batch(s3, objects):
    if not objects:
        return
    answer = s3.call(
        "delete objects",
        "delete_objects",
        Bucket=s3.bucket,
        Delete={"Objects": objects, "Quiet": True},
    )
    errors = answer.get("Errors") or []
    if errors:
        first = errors[0]
        raise s3.fail(
            "delete objects",
            first.get("Code", "Error"),
            "%s (%d objects not deleted)" % (first.get("Message", ""), len(errors)),
        )


def empty_bucket(s3):
    """Delete every object version, delete marker and object of the bucket."""
    try:
        while True:
            answer = s3.call("list object versions", "list_object_versions", Bucket=s3.bucket, MaxKeys=1000)
            batch = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in (answer.get("Versions") or []) + (answer.get("DeleteMarkers") or [])
            ]
            if not batch:
                break
            _delete_batch(s3, batch)
    except S3Unsupported:
        pass
    while True:
        answer = s3.call("list objects", "list_objects_v2", Bucket=s3.bucket, MaxKeys=1000)
        batch = [{"Key": item["Key"]} for item in answer.get("Contents") or []]
        if not batch:
            break
        _delete_batch(s3, batch)


# --------------------------------------------------------------------------- flows


def ensure_absent(s3, params, check_mode):
    """Return (changed, before, after)."""
    if not s3.bucket_exists():
        return False, empty_settings(), empty_settings()
    before, _unsupported = read_settings(s3)
    if not params["force"] and bucket_has_objects(s3):
        raise s3.fail(
            "delete", "BucketNotEmpty", "the bucket holds objects; set force=true to delete them with it"
        ) from None
    if not check_mode:
        if params["force"]:
            empty_bucket(s3)
        s3.call("delete", "delete_bucket", Bucket=s3.bucket)
    return True, before, empty_settings()


def ensure_present(s3, params, wanted, check_mode):
    """Return (changed, before, after, unsupported)."""
    exists = s3.bucket_exists()
    before, unsupported = read_settings(s3) if exists else (empty_settings(), [])
    base = before
    if not exists and not check_mode:
        create_bucket(s3, params["region"])
        # What a new bucket starts with (some endpoints turn features on by default).
        base, unsupported = read_settings(s3)

    skipped = [feature for feature in FEATURES if feature in wanted and feature in unsupported]
    asked = dict((feature, value) for feature, value in wanted.items() if feature not in skipped)
    changes, after = plan_changes(base, asked)
    after["exists"] = True
    if not check_mode:
        # Unblock public access before a policy that needs it.
        for feature in ("versioning", "encryption", "public_access_block", "policy"):
            if feature in changes:
                try:
                    apply_change(s3, feature, after)
                except S3Unsupported:
                    skipped.append(feature)
                    after[feature] = base[feature]
                    changes.remove(feature)
    return (not exists) or bool(changes), before, after, skipped


def _public(settings):
    return dict(
        policy=settings["policy"],
        versioning=settings["versioning"],
        public_access_block=settings["public_access_block"],
        encryption=settings["encryption"],
    )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_together=[("access_key", "secret_key")],
        supports_check_mode=True,
    )
    if not HAS_BOTO3:
        module.fail_json(msg=missing_required_lib("boto3"), exception=to_native(BOTO3_IMPORT_ERROR))

    params = module.params
    result = dict(
        changed=False,
        name=params["name"],
        endpoint_url=params["endpoint_url"],
        policy=None,
        versioning=None,
        public_access_block=None,
        encryption=None,
        unsupported=[],
    )
    try:
        wanted = desired_settings(params) if params["state"] == "present" else {}
        s3 = S3BucketClient(params)
        if params["state"] == "absent":
            changed, before, after = ensure_absent(s3, params, module.check_mode)
            skipped = []
        else:
            changed, before, after, skipped = ensure_present(s3, params, wanted, module.check_mode)
    except (PolicyError, InputError) as exc:
        error = "s3_bucket: check options on bucket '%s' at %s failed: %s: %s" % (
            params["name"],
            params["endpoint_url"] or "AWS",
            "MalformedPolicy" if isinstance(exc, PolicyError) else "InvalidOptions",
            to_native(exc),
        )
    except S3Error as exc:
        error = to_native(exc)
    else:
        error = None
    if error is not None:
        module.fail_json(msg=error, **result)

    result.update(_public(after))
    result["changed"] = changed
    result["unsupported"] = skipped
    for feature in skipped:
        module.warn(
            "s3_bucket: the endpoint %s does not implement %s; it was not managed on bucket '%s'"
            % (params["endpoint_url"] or "AWS", feature.replace("_", " "), params["name"])
        )
    if module._diff:
        result["diff"] = dict(before=before, after=after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
