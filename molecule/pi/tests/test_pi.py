"""The Pi layout from site.yml: every role on one host, laid out by the collection from the groups."""

import base64
import json

import pytest

USER = ("alice", "pi-alice-password-01")
SECRETS = ["pi-db-secret-000001", "pi-admin-secret-000001", "pi-mlflow-secret-00001", "pi-alice-password-01"]


def test_wiring_reached_every_role(host):
    env = host.file("/etc/mlflow/mlflow-server.env").content_string
    assert "postgresql+psycopg2://mlflow:" in env
    assert "MLFLOW_ARTIFACTS_DESTINATION='s3://mlflow/artifacts'" in env
    assert "MLFLOW_S3_ENDPOINT_URL='http://127.0.0.1:8333'" in env
    assert "AWS_ACCESS_KEY_ID='PIMLFLOW00001'" in env


def test_extra_env_reaches_the_server_verbatim(host):
    """mlflow_server_extra_env of host_vars: systemd's EnvironmentFile= hands the values over unchanged."""
    expected = {"MLOPS_TRICKY": 'it\'s "$HOME" \\back\\slash 100% %h `id`\nsecond line', "MLOPS_PLAIN": "plain-value"}
    mlflow = host.check_output("systemctl show -p MainPID --value mlflow-server")
    raw = base64.b64decode(host.check_output(f"base64 -w0 /proc/{mlflow}/environ")).decode()
    environ = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
    for name, value in expected.items():
        assert environ.get(name) == value, name


def test_pi_profile_reached_the_services(host):
    """mlops_profile: pi: one mlflow worker, 32MB shared_buffers, weed's GOMEMLIMIT, keepalive 16."""
    weed = host.check_output("systemctl show -p MainPID --value mlops-object-store")
    environ = host.check_output(f"tr '\\0' '\\n' < /proc/{weed}/environ").splitlines()
    assert "GOMEMLIMIT=256MiB" in environ
    mlflow = host.check_output("systemctl show -p MainPID --value mlflow-server")
    assert "--workers 1 " in host.check_output(f"tr '\\0' ' ' < /proc/{mlflow}/cmdline")
    buffers = host.check_output("runuser -u postgres -- psql -Atc 'show shared_buffers'")
    assert buffers.strip() == "32MB"
    assert "    keepalive 16;" in host.file("/etc/nginx/sites-available/mlflow.conf").content_string


def test_only_nginx_listens_beyond_loopback(host):
    listeners = host.check_output("ss -Hltn").splitlines()
    public = {line.split()[3] for line in listeners if not line.split()[3].startswith(("127.", "[::1]"))}
    assert {addr.rsplit(":", 1)[1] for addr in public} <= {"80", "443"}, public


def test_real_client_through_nginx_into_the_bucket(host, mlflow_smoke):
    env = f"MLFLOW_TRACKING_USERNAME={USER[0]} MLFLOW_TRACKING_PASSWORD={USER[1]} MLFLOW_TRACKING_INSECURE_TLS=true"
    result = mlflow_smoke("both", "pi", uri="https://localhost", env=env)
    run_id = result["written"]["run_id"]
    listing = host.check_output(
        '/opt/mlflow/venv/bin/python -c "import boto3, json; from botocore.config import Config; '
        "s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:8333', aws_access_key_id='PIMLFLOW00001', "
        "aws_secret_access_key='pi-mlflow-secret-00001', region_name='us-east-1', "
        "config=Config(s3={'addressing_style': 'path'})); "
        "print(json.dumps([o['Key'] for o in s3.list_objects_v2(Bucket='mlflow').get('Contents', [])]))\""
    )
    assert any(run_id in key for key in json.loads(listing))
    assert result["read"]["model_versions"] == 1


def test_no_secret_in_process_list_or_world_readable_files(host):
    processes = host.check_output("ps -eo args")
    readable = host.check_output(
        "find /etc/mlflow /etc/mlops-object-store /etc/nginx /opt/mlflow -maxdepth 2 -type f -perm -o=r "
        "-exec grep -l -e pi-db-secret -e pi-admin-secret -e pi-mlflow-secret -e pi-alice-password {} + || true"
    )
    for secret in SECRETS:
        assert secret not in processes
    assert readable.strip() == ""


@pytest.mark.parametrize("api", ["api", "ajax-api"])  # the Python client's, the UI's
def test_proxy_keeps_artifact_transfers_off_the_private_s3(host, http, api):
    through_nginx = json.loads(
        host.check_output(
            'python3 -c "import base64, ssl, urllib.request as u; '
            f"r = u.Request('https://localhost/{api}/3.0/mlflow/server-info'); "
            "r.add_header('Authorization', 'Basic ' + base64.b64encode(b'alice:pi-alice-password-01').decode()); "
            'print(u.urlopen(r, context=ssl._create_unverified_context()).read().decode())"'
        )
    )
    direct = json.loads(
        host.check_output(
            'python3 -c "import urllib.request as u; '
            f"print(u.urlopen('http://127.0.0.1:5000/{api}/3.0/mlflow/server-info').read().decode())\""
        )
    )
    # mlflow offers presigned S3 transfers; the proxy withdraws the offer.
    assert direct["multipart_downloads_enabled"] is True
    assert through_nginx["multipart_downloads_enabled"] is False
    assert through_nginx["multipart_uploads_enabled"] is False
    assert http(f"https://localhost/{api}/3.0/mlflow/server-info")["status"] == 401


def test_http_redirects_to_the_public_https_port(http):
    """mlops_public_https_port (host_vars) reached nginx_proxy_public_https_port through the layout."""
    answer = http("http://localhost/health?x=1")
    assert answer["status"] == 301
    assert answer["headers"]["Location"] == "https://localhost:8443/health?x=1"
