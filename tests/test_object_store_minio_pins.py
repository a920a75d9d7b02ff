"""MinIO download pins: with object_store_backend=minio and no binary on the host, the role's
preflight (roles/object_store/tasks/preflight.yml, in check mode on localhost) accepts
object_store_minio_url / object_store_minio_mc_url only with a 64-character
object_store_minio_sha256 / object_store_minio_mc_sha256, and refuses, naming the check, a URL
without its pin or a pin without its URL. (Downloading needs operator-supplied binaries:
MinIO's public ones answer 410; see tests/integration/test_object_store_minio.py.)"""

from __future__ import annotations

import json

import pytest
from conftest import REPO_ROOT, run_playbook
from support.role_template import role_vars

SHA = "a" * 64
VALID = {
    "object_store_backend": "minio",
    "object_store_admin_access_key": "ADMINKEY01",
    "object_store_admin_secret_key": "a-good-admin-secret",
    "object_store_mlflow_access_key": "MLFLOWKEY01",
    "object_store_mlflow_secret_key": "a-good-mlflow-secret",
    "object_store_minio_url": "https://downloads.example.com/minio",
    "object_store_minio_sha256": SHA,
    "object_store_minio_mc_url": "https://downloads.example.com/mc",
    "object_store_minio_mc_sha256": SHA,
}
SERVER_CHECK = "Check the MinIO server binary has a source"
CLIENT_CHECK = "Check the MinIO client binary has a source"


def _preflight(tmp_path, **overrides):
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Run the object_store preflight",
                "ansible.builtin.include_tasks": str(REPO_ROOT / "roles/object_store/tasks/preflight.yml"),
            }
        ],
    }
    proc = run_playbook([play], tmp_path, variables={**role_vars("object_store"), **VALID, **overrides}, check=True)
    report = json.loads(proc.stdout)
    failed = [
        task["task"]["name"] for task in report["plays"][0]["tasks"] if task["hosts"].get("localhost", {}).get("failed")
    ]
    return proc.returncode, failed


def test_pinned_urls_pass(tmp_path):
    rc, failed = _preflight(tmp_path)
    assert (rc, failed) == (0, [])


@pytest.mark.parametrize(
    ("overrides", "check"),
    [
        ({"object_store_minio_sha256": SHA[:-1]}, SERVER_CHECK),
        ({"object_store_minio_sha256": ""}, SERVER_CHECK),
        ({"object_store_minio_url": ""}, SERVER_CHECK),
        ({"object_store_minio_mc_sha256": SHA + "0"}, CLIENT_CHECK),
        ({"object_store_minio_mc_url": ""}, CLIENT_CHECK),
    ],
    ids=["short-sha", "no-sha", "no-url", "long-mc-sha", "no-mc-url"],
)
def test_unpinned_or_urlless_download_is_refused(tmp_path, overrides, check):
    rc, failed = _preflight(tmp_path, **overrides)
    assert rc != 0
    assert failed == [check]
