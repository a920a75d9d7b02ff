"""mlflow gc in container mode: the timer's service runs the role's gc script inside the server's
image (podman), with the server's environment read by the image's entry point, and purges a run
deleted through the client behind nginx: its rows leave the SQLite store and its proxied artifacts
the local destination, while a live run in the same experiment keeps both. The script and the
store's secrets stay off the engine's view of the container."""

from __future__ import annotations

# alice of molecule.yml, through nginx; the secrets of molecule.yml that must stay out of the unit.
ENV = (
    "MLFLOW_TRACKING_URI=https://127.0.0.1 MLFLOW_TRACKING_USERNAME=alice MLFLOW_TRACKING_PASSWORD=alice-password-0001"
    " MLFLOW_TRACKING_INSECURE_TLS=true"
)
SECRETS = ["container-admin-pass-0001", "container-flask-secret-key-0123456789abcdef", "alice-password-0001"]
STORE = "/var/lib/mlflow/mlflow.db"
ARTIFACTS = "/var/lib/mlflow/artifacts"


def _rows(host, table: str, run_id: str) -> int:
    count = "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2], sys.argv[3:]).fetchone()[0])"
    query = f"SELECT count(*) FROM {table} WHERE run_uuid = ?"
    return int(host.check_output(f"python3 -c '{count}' {STORE} '{query}' {run_id}"))


def _artifacts(host, run_id: str) -> list[str]:
    return host.check_output(f"find {ARTIFACTS} -path '*/{run_id}/*' -type f").split()


def test_a_deleted_run_is_purged_inside_the_image(host, kept_and_deleted_runs):
    assert host.service("mlflow-gc.timer").is_enabled
    unit = host.check_output("systemctl cat mlflow-gc.service")
    assert "podman run --rm --name mlflow-gc" in unit and "python /usr/local/sbin/mlflow-gc" in unit
    assert not [secret for secret in SECRETS if secret in unit]
    ids = kept_and_deleted_runs("gc-container", ENV)
    kept, deleted = ids["kept"], ids["deleted"]
    assert _artifacts(host, deleted) and _artifacts(host, kept)
    assert _rows(host, "runs", deleted) == 1  # deleted through the client: only marked so far

    host.check_output("sleep 2 && systemctl start mlflow-gc.service")  # the oneshot waits for its end

    assert "Result=success" in host.check_output("systemctl show -p Result mlflow-gc.service")
    assert _artifacts(host, deleted) == []
    assert len(_artifacts(host, kept)) == 1
    for table in ("runs", "metrics", "latest_metrics", "tags"):
        assert _rows(host, table, deleted) == 0, table
    assert _rows(host, "runs", kept) == 1 and _rows(host, "metrics", kept) == 1
    # The job's container went with its run; the server's stayed up throughout.
    assert "mlflow-gc" not in host.check_output("podman ps -a --format '{{.Names}}'").split()
    assert host.service("mlflow-server").is_running
