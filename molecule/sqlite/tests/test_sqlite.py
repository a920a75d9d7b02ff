"""mlflow_server on SQLite: real client round trip, secrets handling, reboot."""


def test_service_enabled_and_listening_on_loopback(host):
    service = host.service("mlflow-server")
    assert service.is_running
    assert service.is_enabled
    assert host.socket("tcp://127.0.0.1:5000").is_listening
    assert not host.socket("tcp://0.0.0.0:5000").is_listening


def test_env_file_holds_the_uri_and_is_private(host):
    env = host.file("/etc/mlflow/mlflow-server.env")
    assert (env.user, env.group, env.mode) == ("root", "mlflow", 0o640)
    assert "MLFLOW_BACKEND_STORE_URI='sqlite:////var/lib/mlflow/mlflow.db'" in env.content_string
    assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION='false'" in env.content_string
    unit = host.file("/etc/systemd/system/mlflow-server.service").content_string
    assert "backend-store-uri" not in unit


def test_store_owned_by_mlflow(host):
    db = host.file("/var/lib/mlflow/mlflow.db")
    assert (db.user, db.group) == ("mlflow", "mlflow")


def test_pinned_mlflow_version(host):
    version = host.check_output("/opt/mlflow/venv/bin/python -c 'import mlflow; print(mlflow.__version__)'")
    assert version.strip() == "3.17.2"


def test_real_client_round_trip_and_reboot(host, mlflow_smoke, reboot, health):
    mlflow_smoke("write", "sqlite")
    assert mlflow_smoke("read", "sqlite")["read"]["artifact_bytes"] == 10 * 1024 * 1024
    artifacts = host.check_output("find /var/lib/mlflow/artifacts -name weights.bin")
    assert artifacts.strip(), "the artifact did not land in the local artifact store"
    reboot()
    health()
    assert mlflow_smoke("read", "sqlite")["read"]["model_versions"] == 1


def test_foreign_host_header_refused(host):
    probe = (
        'python3 -c "import urllib.request as u, urllib.error as e\n'
        "req = u.Request('http://127.0.0.1:5000/api/2.0/mlflow/experiments/search?max_results=1', "
        "headers={'Host': 'evil.example'})\n"
        'try:\n    print(u.urlopen(req).status)\nexcept e.HTTPError as err:\n    print(err.code)"'
    )
    assert host.check_output(probe).strip() == "403"
