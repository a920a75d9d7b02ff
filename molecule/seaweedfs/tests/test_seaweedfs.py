"""SeaweedFS as the artifact store: real client through the server, objects in the bucket, no anonymous access."""

import json

MLFLOW_KEYS = ("MOLECULEMLFLOW01", "molecule-mlflow-secret-01")
S3 = "http://127.0.0.1:8333"

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


def test_store_runs_hardened_on_loopback(host):
    assert host.service("mlops-object-store").is_running
    assert host.service("mlops-object-store").is_enabled
    assert host.socket("tcp://127.0.0.1:8333").is_listening
    assert not host.socket("tcp://0.0.0.0:8333").is_listening
    identities = host.file("/etc/mlops-object-store/s3.json")
    assert (identities.user, identities.group, identities.mode) == ("root", "s3store", 0o640)
    # The role's default soft memory limit reaches the weed process.
    weed = host.check_output("systemctl show -p MainPID --value mlops-object-store")
    assert "GOMEMLIMIT=512MiB" in host.check_output(f"tr '\\0' '\\n' < /proc/{weed}/environ").splitlines()


def test_artifacts_go_through_the_server_into_the_bucket(host, mlflow_smoke):
    result = mlflow_smoke("both", "seaweed")
    run_id = result["written"]["run_id"]
    listing = boto(host, *MLFLOW_KEYS, "list")
    assert listing["ok"], listing
    assert any(run_id in key and key.endswith("model/weights.bin") for key in listing["keys"]), listing
    env = host.file("/etc/mlflow/mlflow-server.env").content_string
    assert "AWS_SECRET_ACCESS_KEY='molecule-mlflow-secret-01'" in env
    assert "molecule-mlflow-secret-01" not in host.check_output("ps -eo args")


def test_anonymous_access_is_refused(host):
    code = host.check_output(
        'python3 -c "import urllib.request as u, urllib.error as e\n'
        "try:\n    print(u.urlopen('" + S3 + "/mlflow/').status)\nexcept e.HTTPError as err:\n    print(err.code)\""
    )
    assert code.strip() == "403"


def test_wrong_keys_are_refused(host):
    denied = boto(host, MLFLOW_KEYS[0], "not-the-secret-0000", "list")
    assert not denied["ok"] and "SignatureDoesNotMatch" in denied["error"]


def test_mlflow_identity_is_limited_to_its_bucket(host):
    refused = boto(host, *MLFLOW_KEYS, "create-other")
    assert not refused["ok"] and "AccessDenied" in refused["error"]


def test_bucket_policy_names_only_the_mlflow_identity(host):
    script = (
        "import boto3, json; from botocore.config import Config; "
        "s3 = boto3.client('s3', endpoint_url='" + S3 + "', aws_access_key_id='MOLECULEADMIN01', "
        "aws_secret_access_key='molecule-admin-secret-01', region_name='us-east-1', "
        "config=Config(s3={'addressing_style': 'path'})); "
        "print(s3.get_bucket_policy(Bucket='mlflow')['Policy'])"
    )
    policy = json.loads(host.check_output(f'/opt/mlflow/venv/bin/python -c "{script}"'))
    principals = [s["Principal"]["AWS"] for s in policy["Statement"]]
    assert principals == [["arn:aws:iam::000000000000:user/mlflow"]] or principals == [
        "arn:aws:iam::000000000000:user/mlflow"
    ]
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])


MISSING = """
import urllib.error, urllib.request
try:
    urllib.request.urlopen("http://127.0.0.1:5000/api/2.0/mlflow-artifacts/artifacts/no/such/run/artifacts/MLmodel")
    print(200)
except urllib.error.HTTPError as exc:
    print(exc.code)
"""


def test_a_missing_s3_artifact_answers_404_not_500(host):
    """mlflow_server_s3_404_fix: MLflow's own S3 repository lets botocore's 404 out as a 500, which
    clients retry for minutes before a runs:/ model load falls back to the logged model."""
    host.check_output(f"cat > /root/missing_check.py <<'EOF'\n{MISSING}\nEOF")
    assert host.check_output("/opt/mlflow/venv/bin/python /root/missing_check.py") == "404"
    probe = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = host.check_output(f'/opt/mlflow/venv/bin/python -c "{probe}"')
    assert host.file(f"{site}/mlops_mlflow_s3_404.py").exists


def _on_target(host, path):
    rclone = "rclone --config=/etc/mlops-backup/rclone.conf"
    listing = host.run(f"{rclone} lsf --recursive --files-only target:mlflow/molecule-backup/{path}")
    assert listing.rc == 0, listing.stderr
    return listing.stdout.split()


def test_the_backup_jobs_ship_from_their_sandbox(host, mlflow_smoke):
    # Root reads the mlflow user's 0640 store there (the capabilities a container leaves it), and
    # SQLite's fchown of its journal meets EPERM, not the filter's SIGSYS.
    mlflow_smoke("both", "backup")  # artifacts in the bucket, whatever ran before
    for job in ("stores", "artifacts"):
        started = host.run(f"systemctl start mlops-backup@{job}.service")
        journal = host.run(f"journalctl -u mlops-backup@{job}.service -n 20 --no-pager -o cat").stdout
        assert started.rc == 0, journal
    assert [name for name in _on_target(host, "stores/mlflow") if name.endswith(".db")]
    source = {key.removeprefix("artifacts/") for key in boto(host, *MLFLOW_KEYS, "list")["keys"]}
    assert source and source <= set(_on_target(host, "artifacts"))
