"""The monitoring role's preflight (tasks/preflight.yml) refuses out-of-range settings, naming the variable.

Run on localhost in check mode with the role's defaults and vars; the preflight is the role's
first step, so a refusal comes before any change.
"""

from __future__ import annotations

import json

import pytest
from conftest import REPO_ROOT, failure_messages, run_playbook, task_results
from support.role_template import role_vars


def _preflight(tmp_path, **overrides) -> tuple[int, str]:
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Run the monitoring preflight",
                "ansible.builtin.include_tasks": str(REPO_ROOT / "roles/monitoring/tasks/preflight.yml"),
            }
        ],
    }
    proc = run_playbook([play], tmp_path, variables={**role_vars("monitoring"), **overrides}, check=True)
    return proc.returncode, failure_messages(task_results(proc))


BAD = [
    ("monitoring_listen_address", "9090"),
    ("monitoring_listen_address", "127.0.0.1:0"),
    ("monitoring_listen_address", "127.0.0.1:70000"),
    ("monitoring_listen_address", "127.0.0.1 :9090"),
    ("monitoring_retention_days", 0),
    ("monitoring_retention_days", 5000),
    ("monitoring_retention_days", "15d"),
    ("monitoring_scrape_interval_seconds", 0),
    ("monitoring_scrape_interval_seconds", 4),
    ("monitoring_scrape_interval_seconds", 601),
    ("monitoring_scrape_interval_seconds", -30),
    ("monitoring_evaluation_interval_seconds", 0),
    ("monitoring_evaluation_interval_seconds", 3600),
    ("monitoring_node_exporter_port", 0),
    ("monitoring_postgres_exporter_port", 65536),
    ("monitoring_nginx_exporter_port", "http"),
    ("monitoring_seaweedfs_metrics_port", 0),
    ("monitoring_mlflow_port", 99999),
    ("monitoring_down_for_seconds", -1),
    ("monitoring_alert_for_seconds", 86401),
    ("monitoring_disk_used_percent", 0),
    ("monitoring_disk_used_percent", 100),
    ("monitoring_disk_used_percent", 85.5),
    ("monitoring_certificate_expiry_days", 0),
    ("monitoring_certificate_expiry_days", 400),
    ("monitoring_5xx_ratio", 0),
    ("monitoring_5xx_ratio", 1),
    ("monitoring_5xx_ratio", 5),
    ("monitoring_latency_quantile", 0),
    ("monitoring_latency_quantile", 1.0),
    ("monitoring_latency_seconds", 0),
    ("monitoring_latency_seconds", -0.5),
    ("monitoring_latency_seconds", "fast"),
    ("monitoring_backup_stale_factor", 1),
    ("monitoring_backup_stale_factor", 0.5),
]


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v!r}" for n, v in BAD])
def test_out_of_range_setting_is_refused(tmp_path, name, value):
    rc, msg = _preflight(tmp_path, **{name: value})
    assert rc != 0
    assert f"{name} must be" in msg, msg
    assert f"got {json.dumps(value)}" in msg or f"got {json.dumps(str(value))}" in msg, msg


def test_defaults_and_edges_pass(tmp_path):
    rc, msg = _preflight(
        tmp_path,
        monitoring_listen_address="[::1]:9090",
        monitoring_scrape_interval_seconds=5,
        monitoring_disk_used_percent=99,
        monitoring_latency_seconds=0.25,
        monitoring_down_for_seconds=0,
    )
    assert (rc, msg) == (0, "")
