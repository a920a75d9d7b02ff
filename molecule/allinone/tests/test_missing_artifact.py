"""A missing artifact answers 404 through nginx (not 500, which MLflow clients retry for minutes).

This scenario keeps its artifacts on local disk, where MLflow itself answers 404; the role's S3 404
plugin (mlflow_server_s3_404_fix) is for s3:// destinations and stays out of this venv.
"""

ALICE = ("alice", "alice-password-0001")
BASE = "https://127.0.0.1"


def test_missing_artifact_answers_404_through_nginx(http):
    answer = http(BASE + "/api/2.0/mlflow-artifacts/artifacts/no/such/run/artifacts/model", *ALICE)
    assert answer["status"] == 404, answer


def test_s3_404_plugin_only_for_s3_destinations(host):
    probe = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = host.check_output(f'/opt/mlflow/venv/bin/python -c "{probe}"')
    assert not host.file(f"{site}/mlops_mlflow_s3_404.py").exists
    assert not host.file(f"{site}/mlops_mlflow_s3_404-1.0.0.dist-info").exists
