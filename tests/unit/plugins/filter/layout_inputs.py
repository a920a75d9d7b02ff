"""What the layout unit tests feed the filter: a user's secrets and the all-in-one groups."""

from __future__ import annotations

SECRETS = {
    "mlops_db_password": "db-secret-000001",
    "mlops_s3_admin_access_key": "ADMINKEY01",
    "mlops_s3_admin_secret_key": "admin-secret-000001",
    "mlops_s3_mlflow_access_key": "MLFLOWKEY1",
    "mlops_s3_mlflow_secret_key": "mlflow-secret-00001",
    "mlops_users": [{"name": "alice", "password": "alice-password-1"}],
}
ALL_IN_ONE = {group: ["pi"] for group in ("mlflow_db", "mlflow_object_store", "mlflow_server", "mlflow_proxy")}
