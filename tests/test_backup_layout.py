"""What the layout step hands the backup role on each mlflow server: the artifact store and the SQLite
stores mlflow itself uses (mlops.mlflow.layout filter), and mlflow's S3 key (the layout role's tasks).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.mlops.mlflow.plugins.filter.layout import layout
from ansible_collections.mlops.mlflow.tests.unit.plugins.filter.layout_inputs import SECRETS
from conftest import _ansible_env


def _backup(host, hostvars, groups) -> dict:
    derived = {**layout(host, hostvars, groups), **layout(host, hostvars, groups, secrets=True)}
    return {name: value for name, value in derived.items() if name.startswith("backup_")}


def test_split_layout_backs_up_the_object_store_bucket_from_the_first_server_only():
    groups = {"mlflow_db": ["db"], "mlflow_object_store": ["s3"], "mlflow_server": ["m1", "m2"], "mlflow_proxy": ["px"]}
    addresses = {"db": "10.0.0.11", "s3": "10.0.0.12", "m1": "10.0.0.21", "m2": "10.0.0.22", "px": "10.0.0.30"}
    hostvars = {host: {**SECRETS, "mlops_private_address": address} for host, address in addresses.items()}
    hostvars["s3"]["object_store_bind_address"] = "10.0.0.12"
    first = _backup("m1", hostvars, groups)
    assert first == {
        "backup_artifacts_enabled": True,
        "backup_artifacts_source_bucket": "mlflow",
        "backup_artifacts_source_prefix": "artifacts",
        "backup_artifacts_source_endpoint_url": "http://10.0.0.12:8333",
        "backup_artifacts_source_region": "us-east-1",
    }
    # PostgreSQL backend: no SQLite store (pgBackRest backs it up); the second server shares the bucket.
    assert _backup("m2", hostvars, groups)["backup_artifacts_enabled"] is False
    assert _backup("db", hostvars, groups) == {}


@pytest.mark.parametrize("auth", [False, True], ids=["no-auth", "auth"])
def test_sqlite_layout_backs_up_the_store_the_auth_store_and_the_artifact_directory(auth):
    groups = {"mlflow_server": ["pi"], "mlflow_proxy": ["pi"]}
    hostvars = {"pi": {**SECRETS, "mlops_mlflow_auth": auth, "mlflow_server_home": "/srv/mlflow"}}
    stores = [{"name": "mlflow", "path": "/srv/mlflow/mlflow.db"}]
    if auth:
        stores.append({"name": "basic_auth", "path": "/srv/mlflow/basic_auth.db"})
    assert _backup("pi", hostvars, groups) == {
        "backup_artifacts_enabled": True,
        "backup_artifacts_source_dir": "/srv/mlflow/artifacts",
        "backup_stores": stores,
    }


def test_the_users_own_backup_variables_win():
    groups = {"mlflow_server": ["pi"], "mlflow_proxy": ["pi"]}
    hostvars = {
        "pi": {
            **SECRETS,
            "mlflow_server_sqlite_path": "/data/mlflow.db",
            "backup_stores": [{"name": "mine", "path": "/data/x.db"}],
        }
    }
    derived = _backup("pi", hostvars, groups)
    assert "backup_stores" not in derived


def test_the_layout_role_hands_mlflows_key_to_the_backup_role(tmp_path):
    inventory = tmp_path / "inventory.json"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {"localhost": {"ansible_connection": "local"}},
                    "children": {
                        "mlflow_object_store": {"hosts": {"localhost": {}}},
                        "mlflow_server": {"hosts": {"localhost": {}}},
                        "mlflow_proxy": {"hosts": {"localhost": {}}},
                    },
                    "vars": SECRETS,
                }
            }
        )
    )
    play = {
        "hosts": "all",
        "gather_facts": False,
        "roles": ["mlops.mlflow.layout"],
        "tasks": [
            {
                "name": "Show the backup role's source",
                "ansible.builtin.debug": {
                    "msg": "{{ [backup_artifacts_source_bucket, backup_artifacts_source_endpoint_url,"
                    " backup_artifacts_source_access_key, backup_artifacts_source_secret_key] }}"
                },
            }
        ],
    }
    book = tmp_path / "play.json"
    book.write_text(json.dumps([play]))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(book)],
        capture_output=True,
        text=True,
        env=_ansible_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    shown = next(t for t in tasks if t["task"]["name"] == "Show the backup role's source")
    assert shown["hosts"]["localhost"]["msg"] == [
        "mlflow",
        "http://127.0.0.1:8333",
        "MLFLOWKEY1",
        "mlflow-secret-00001",
    ]
    hand = next(t for t in tasks if t["task"]["name"].endswith("Hand the backup role mlflow's S3 key"))
    assert "MLFLOWKEY1" not in json.dumps(hand)
