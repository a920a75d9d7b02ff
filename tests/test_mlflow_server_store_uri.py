"""The backend store URI mlflow_server builds from its parts reaches SQLAlchemy as written.

The role renders the URI (a secret: it only ever goes to the env file); these tests render it
on this machine through the role's own variables and parse it with SQLAlchemy, as mlflow does.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import play_results, run_playbook
from sqlalchemy.engine import make_url

PARTS = {
    "mlflow_server_backend": "postgresql",
    "mlflow_server_db_host": "db.internal",
    "mlflow_server_db_user": "ml/flow",
    "mlflow_server_db_password": "p@ss:w/rd&x=1 +%",
}


def _render(variables: dict, tmp_path: Path, expression: str = "{{ _mlflow_server_backend_store_uri }}") -> str:
    play = {
        "name": "render the store URI",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {"ansible.builtin.import_role": {"name": "mlops.mlflow.mlflow_server", "tasks_from": "preflight"}},
            {"ansible.builtin.debug": {"msg": expression}},
        ],
    }
    proc = run_playbook([play], tmp_path, variables=variables, check=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return play_results(json.loads(proc.stdout)["plays"][0])[-1]["msg"]


def test_options_with_reserved_characters_reach_the_driver_unchanged(tmp_path):
    options = {
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ssl/rds ca&bundle=2+.pem",
        "options": "-c statement_timeout=30000",
        "connect_timeout": 10,
    }
    url = make_url(_render({**PARTS, "mlflow_server_db_options": options}, tmp_path))
    assert url.drivername == "postgresql+psycopg2"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "ml/flow",
        PARTS["mlflow_server_db_password"],
        "db.internal",
        5432,
        "mlflow",
    )
    assert dict(url.query) == {key: str(value) for key, value in options.items()}


def test_no_options_no_query(tmp_path):
    uri = _render(PARTS, tmp_path)
    assert "?" not in uri
    assert make_url(uri).query == {}


def test_the_store_and_artifacts_follow_the_home_directory(tmp_path):
    variables = {"mlflow_server_backend": "sqlite", "mlflow_server_home": "/srv/ml"}
    assert _render(variables, tmp_path) == "sqlite:////srv/ml/mlflow.db"
    assert _render(variables, tmp_path, "{{ mlflow_server_artifacts_destination }}") == "/srv/ml/artifacts"
