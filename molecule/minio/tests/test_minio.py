"""MinIO as the artifact store: a least-privilege mlflow user, no anonymous access, the real client."""

import json

MLFLOW_KEYS = ("MOLECULEMLFLOW01", "molecule-mlflow-secret-01")
S3 = "http://127.0.0.1:9000"

BOTO = f"""
import json, sys
import boto3
from botocore.config import Config
key, secret, op = sys.argv[1:4]
config = Config(s3={{"addressing_style": "path"}}, retries={{"max_attempts": 1}})
s3 = boto3.client("s3", endpoint_url="{S3}", aws_access_key_id=key, aws_secret_access_key=secret,
                  region_name="us-east-1", config=config)
try:
    if op == "list":
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mlflow", Prefix="artifacts/").get("Contents", [])]
        print(json.dumps({{"ok": True, "keys": keys}}))
    elif op == "create-other":
        s3.create_bucket(Bucket="not-for-mlflow")
        print(json.dumps({{"ok": True}}))
except Exception as exc:
    print(json.dumps({{"ok": False, "error": str(exc)}}))
"""


def boto(host, key, secret, op):
    host.check_output(f"cat > /root/boto_check.py <<'EOF'\n{BOTO}\nEOF")
    return json.loads(host.check_output(f"/opt/mlflow/venv/bin/python /root/boto_check.py {key} '{secret}' {op}"))


def test_minio_runs_on_loopback_from_the_provided_binary(host):
    assert host.service("mlops-object-store").is_running
    assert host.socket("tcp://127.0.0.1:9000").is_listening
    assert not host.socket("tcp://0.0.0.0:9000").is_listening
    env = host.file("/etc/mlops-object-store/minio.env")
    assert (env.user, env.mode) == ("root", 0o640)
    assert "molecule-admin-secret-01" not in host.check_output("ps -eo args")


def test_artifacts_land_in_the_bucket_through_the_server(host, mlflow_smoke):
    run_id = mlflow_smoke("both", "minio")["written"]["run_id"]
    listing = boto(host, *MLFLOW_KEYS, "list")
    assert listing["ok"], listing
    assert any(run_id in key and key.endswith("model/weights.bin") for key in listing["keys"]), listing


def test_anonymous_and_wrong_keys_are_refused(host):
    code = host.check_output(
        'python3 -c "import urllib.request as u, urllib.error as e\n'
        "try:\n    print(u.urlopen('" + S3 + "/mlflow/').status)\nexcept e.HTTPError as err:\n    print(err.code)\""
    )
    assert code.strip() == "403"
    denied = boto(host, MLFLOW_KEYS[0], "not-the-secret-0000", "list")
    assert not denied["ok"] and "SignatureDoesNotMatch" in denied["error"]


def test_mlflow_user_is_limited_to_its_bucket(host):
    refused = boto(host, *MLFLOW_KEYS, "create-other")
    assert not refused["ok"] and "AccessDenied" in refused["error"]
