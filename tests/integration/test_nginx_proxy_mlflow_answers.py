"""What a user sees through nginx_proxy's site: its answers in front of a real mlflow server.

The site is the role's template rendered by Ansible (TLS on, nginx_proxy_public_https_port set as
the demo's port mapping would), served by Debian's nginx with its own nginx.conf, in front of
`mlflow server` from this venv started with the role's arguments; the plumbing is the benches'
(bench/_stack.py). mlflow's artifacts go to S3 (an endpoint nobody listens on: nothing here
transfers an artifact), so mlflow itself advertises multipart transfers.

Checked: every answer (mlflow's 200, 404 and 500, nginx's 401, 429 and 405) carries each security
header exactly once, and a 401 one WWW-Authenticate; HTTP redirects to the public HTTPS port; the
UI's server-info (/ajax-api) withdraws multipart transfers as the client's (/api) does; GET
/graphql, which mlflow answers with 500, gets 405 with Allow: POST, after the login check.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import ssl
import sys

import pytest
from conftest import REPO_ROOT, find_free_port

pytestmark = pytest.mark.integration

if str(REPO_ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "bench"))

import _stack as stack  # noqa: E402  (bench/_stack.py)

USER, PASSWORD = "alice", "answers-alice-password-01"
PUBLIC_HTTPS_PORT = 8443  # what the demo publishes nginx's 443 as
AUTH_FAIL_BURST = 3
SECURITY_HEADERS = ("Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy")
SERVER_INFO_PATHS = ("/api/3.0/mlflow/server-info", "/ajax-api/3.0/mlflow/server-info")
MULTIPART = ("multipart_uploads_enabled", "multipart_downloads_enabled")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """(site text, mlflow server) with the role's site and arguments; the server runs for the module."""
    if os.geteuid() != 0:
        pytest.skip("nginx runs its workers as www-data from Debian's nginx.conf: run as root")
    if not shutil.which("nginx"):
        pytest.skip("nginx is needed (scripts/host-deps)")
    work = stack.tempdir("nginx-answers-")
    cert, key = stack.self_signed_pair(work)
    env = stack.mlflow_env(
        f"sqlite:///{work / 'mlflow.db'}",
        "s3://mlflow/artifacts",
        {
            "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{find_free_port()}",
            "AWS_ACCESS_KEY_ID": "answers-test-key",
            "AWS_SECRET_ACCESS_KEY": "answers-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
    )
    server = stack.MlflowServer("mlflow", [], env, work / "mlflow")
    texts = stack.render(
        work,
        [
            stack.server_args_item("mlflow", {"mlflow_server_workers": 1}),
            stack.site_item(
                "tls",
                {
                    "nginx_proxy_server_name": "localhost",
                    "nginx_proxy_upstreams": [f"127.0.0.1:{server.port}"],
                    "nginx_proxy_htpasswd_path": str(work / "mlflow.htpasswd"),
                    "nginx_proxy_tls_certificate": str(cert),
                    "nginx_proxy_tls_certificate_key": str(key),
                    "nginx_proxy_public_https_port": PUBLIC_HTTPS_PORT,
                    "nginx_proxy_auth_fail_burst": AUTH_FAIL_BURST,
                },
            ),
        ],
    )
    stack.write_htpasswd(work / "mlflow.htpasswd", {USER: PASSWORD})
    server.args = stack.with_port(texts["args-mlflow"], server.port)
    try:
        server.start().wait()
        yield texts["site-tls"], server
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def site(rendered):
    """A fresh nginx per test (its failed-login counts start at zero) on the module's mlflow."""
    text, server = rendered
    nginx = stack.SiteNginx(text).start()
    nginx.mlflow = server
    yield nginx
    nginx.stop()


def _auth() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


def _request(port, method="GET", path="/", *, body=None, headers=None, tls=True):
    """(status, [(name, value), ...] with repeats, body)."""
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def _values(headers, name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name.lower()]


def _assert_security_headers_once(headers) -> None:
    counts = {name: len(_values(headers, name)) for name in SECURITY_HEADERS}
    assert counts == dict.fromkeys(SECURITY_HEADERS, 1), headers


def test_http_redirects_to_the_public_https_port(site):
    status, headers, _ = _request(site.redirect_port, path="/ajax-api/x?y=1", tls=False)
    assert status == 301
    assert _values(headers, "Location") == [f"https://127.0.0.1:{PUBLIC_HTTPS_PORT}/ajax-api/x?y=1"]


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("GET", "/", None, 200),  # the UI's page
        ("GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=nope", None, 404),  # mlflow's JSON 404
        ("GET", "/no-such-page", None, 404),  # mlflow's HTML 404
        ("POST", "/graphql", b"{}", 500),  # mlflow fails on a query-less body
        ("GET", "/graphql", None, 405),  # nginx's answer, from a location of its own
        ("GET", SERVER_INFO_PATHS[1], None, 200),  # the sub_filter location
    ],
)
def test_security_headers_once_on_authenticated_answers(site, method, path, body, expected):
    headers = {**_auth(), "Content-Type": "application/json"} if body else _auth()
    status, answer, _ = _request(site.port, method, path, body=body, headers=headers)
    assert status == expected
    _assert_security_headers_once(answer)
    if expected != 405:
        # mlflow sends nosniff and X-Frame-Options itself: nginx must not add a second copy.
        direct_status, direct = _direct(site.mlflow, method, path, body)
        assert direct_status == expected
        assert _values(direct, "X-Content-Type-Options") == ["nosniff"]
        assert _values(direct, "X-Frame-Options") == ["SAMEORIGIN"]


def _direct(server, method="GET", path="/", body=None):
    """(status, headers) of a request straight to mlflow."""
    return _request(server.port, method, path, body=body, headers={"Content-Type": "application/json"}, tls=False)[:2]


def test_failed_logins_get_401_then_429_with_each_header_once(site):
    for attempt in range(AUTH_FAIL_BURST + 1):  # the burst, plus the one the rate allows
        status, headers, _ = _request(site.port, headers={"Authorization": "Basic " + "bm9ib2R5Ondyb25n"})
        assert status == 401, attempt
        _assert_security_headers_once(headers)
        assert _values(headers, "WWW-Authenticate") == ['Basic realm="MLflow"']
    status, headers, _ = _request(site.port)
    assert status == 429
    _assert_security_headers_once(headers)


@pytest.mark.parametrize("path", SERVER_INFO_PATHS)
def test_server_info_withdraws_multipart_transfers_for_the_ui_too(site, path):
    offered = json.loads(_request(site.mlflow.port, path=path, tls=False)[2])
    assert {name: offered[name] for name in MULTIPART} == dict.fromkeys(MULTIPART, True), "mlflow offers them"
    status, _, body = _request(site.port, path=path, headers=_auth())
    assert status == 200
    answer = json.loads(body)
    assert {name: answer[name] for name in MULTIPART} == dict.fromkeys(MULTIPART, False)
    assert {k: v for k, v in answer.items() if k not in MULTIPART} == {
        k: v for k, v in offered.items() if k not in MULTIPART
    }


def test_graphql_takes_post_and_answers_other_methods_405(site):
    # mlflow itself answers GET /graphql (no JSON body) with 500.
    assert _request(site.mlflow.port, "GET", "/graphql", tls=False)[0] == 500
    for method in ("GET", "HEAD", "PUT"):
        status, headers, _ = _request(site.port, method, "/graphql", headers=_auth())
        assert status == 405, method
        assert _values(headers, "Allow") == ["POST"]
        _assert_security_headers_once(headers)
    # The login is checked first: no method hint for a client that has not logged in.
    status, headers, _ = _request(site.port, "GET", "/graphql")
    assert status == 401
    assert _values(headers, "Allow") == []
    assert _values(headers, "WWW-Authenticate") == ['Basic realm="MLflow"']
    _assert_security_headers_once(headers)
    query = json.dumps({"query": "{ __typename }"}).encode()
    status, _, body = _request(
        site.port, "POST", "/graphql", body=query, headers={**_auth(), "Content-Type": "application/json"}
    )
    assert (status, json.loads(body)) == (200, {"data": {"__typename": "Query"}, "errors": None})


def test_graphql_failed_logins_count_toward_429(site):
    for attempt in range(AUTH_FAIL_BURST + 1):
        assert _request(site.port, "GET", "/graphql")[0] == 401, attempt
    assert _request(site.port, "GET", "/graphql")[0] == 429
