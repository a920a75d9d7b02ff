"""mlflow gc from the user's inventory (mlops_gc_older_than): on this all-in-one host
(PostgreSQL, SeaweedFS S3, artifacts proxied by mlflow), a run deleted through the client is
purged by the timer's own service, mlflow-gc.service: its rows leave PostgreSQL and its objects
the bucket, while a live run in the same experiment keeps both."""

from __future__ import annotations

import base64
import json

PASSWORD = "installed-alice-pass-1"
ENV = (
    f"MLFLOW_TRACKING_URI=https://localhost MLFLOW_TRACKING_USERNAME=alice MLFLOW_TRACKING_PASSWORD={PASSWORD} "
    "MLFLOW_TRACKING_INSECURE_TLS=true"
)
# The bucket as mlflow's own S3 identity sees it (the server's env file: endpoint and keys).
LIST_BUCKET = """
import json, os, urllib.parse, boto3
bucket = urllib.parse.urlparse(os.environ["MLFLOW_ARTIFACTS_DESTINATION"]).netloc
s3 = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"])
keys = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
    keys += [item["Key"] for item in page.get("Contents", [])]
print(json.dumps(keys))
"""
VENV_PYTHON = "/opt/mlflow/venv/bin/python"


def _python(host, script: str, prefix: str = "") -> str:
    payload = base64.b64encode(script.encode()).decode()
    host.check_output(f"echo {payload} | base64 -d > /root/gc_check.py")
    return host.check_output(f"{prefix} {VENV_PYTHON} /root/gc_check.py")


def _keys(host) -> list[str]:
    return json.loads(_python(host, LIST_BUCKET, prefix="set -a && . /etc/mlflow/mlflow-server.env && set +a &&"))


def _rows(host, table: str, run_id: str) -> int:
    query = f"SELECT count(*) FROM {table} WHERE run_uuid = '{run_id}'"
    return int(host.check_output(f'runuser -u postgres -- psql -d mlflow -tAc "{query}"').strip())


def test_a_deleted_run_is_purged_by_the_timers_service(host, kept_and_deleted_runs):
    assert host.service("mlflow-gc.timer").is_enabled
    ids = kept_and_deleted_runs("gc-check", ENV)
    kept, deleted = ids["kept"], ids["deleted"]
    before = _keys(host)
    assert [key for key in before if deleted in key] and [key for key in before if kept in key]
    assert _rows(host, "runs", deleted) == 1  # deleted through the client: only marked so far

    host.check_output("sleep 2 && systemctl start mlflow-gc.service")  # the oneshot waits for its end

    after = _keys(host)
    assert [key for key in after if deleted in key] == []
    assert [key for key in after if kept in key] == [key for key in before if kept in key]
    for table in ("runs", "metrics", "latest_metrics", "tags"):
        assert _rows(host, table, deleted) == 0, table
    assert _rows(host, "runs", kept) == 1 and _rows(host, "metrics", kept) == 1
    assert "Result=success" in host.check_output("systemctl show -p Result mlflow-gc.service")
