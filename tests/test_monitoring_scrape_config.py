"""The monitoring role's scrape configuration, rendered from an inventory the way the role renders it.

Each job follows the layout's groups; the postgres job only where the database is PostgreSQL (a
MariaDB host, mlops_db_engine: mariadb, runs no PostgreSQL exporter, and scraping one would only
fire TargetDown for ever)."""

from __future__ import annotations

import pytest
import yaml
from support.role_template import render_role_template

INVENTORY = """\
[mlflow_db]
db mlops_private_address=10.0.0.11 {db_vars}
[mlflow_object_store]
s3 mlops_private_address=10.0.0.12
[mlflow_server]
m1 mlops_private_address=10.0.0.21
[mlflow_proxy]
localhost
"""


def _jobs(tmp_path, db_vars: str) -> dict[str, list[str]]:
    text = render_role_template(
        "monitoring",
        "prometheus.yml.j2",
        tmp_path / "prometheus.yml",
        tmp_path,
        inventory=INVENTORY.format(db_vars=db_vars),
    )
    config = yaml.safe_load(text)
    return {
        job["job_name"]: [target for block in job["static_configs"] for target in block["targets"]]
        for job in config["scrape_configs"]
    }


@pytest.mark.parametrize("db_vars", ["", "mlops_db_engine=postgresql"])
def test_every_group_has_its_job_and_the_local_host_is_loopback(tmp_path, db_vars):
    jobs = _jobs(tmp_path, db_vars)
    assert jobs["postgres"] == ["10.0.0.11:9187"]
    assert jobs["seaweedfs"] == ["10.0.0.12:9327"]
    assert jobs["mlflow"] == ["10.0.0.21:5000"]
    assert jobs["nginx"] == ["127.0.0.1:9113"]  # the monitoring host itself
    assert sorted(jobs["node"]) == ["10.0.0.11:9100", "10.0.0.12:9100", "10.0.0.21:9100", "127.0.0.1:9100"]


def test_a_mariadb_host_gets_no_postgres_job_but_keeps_its_node_job(tmp_path):
    jobs = _jobs(tmp_path, "mlops_db_engine=mariadb")
    assert "postgres" not in jobs
    assert "10.0.0.11:9100" in jobs["node"]
    assert {"mlflow", "nginx", "seaweedfs", "prometheus"} <= set(jobs)
