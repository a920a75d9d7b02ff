"""nginx_proxy's site, as the role writes it, served by a real nginx with non-default settings.

The role's real template (roles/nginx_proxy/templates/mlflow-site.conf.j2) is rendered with the
role's defaults and vars plus the overrides under test, included in a minimal nginx.conf, checked
with ``nginx -t`` and served on loopback in front of a small Python upstream. The certificate
comes from the role's own tls.yml and the htpasswd file from its users.yml, both run through
ansible-playbook on localhost into a temp directory.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from ansible_collections.mlops.mlflow.plugins.module_utils import htpasswd_file as hf
from conftest import REPO_ROOT, find_free_port, run_playbook
from cryptography import x509
from support.nginx import SiteNginx
from support.role_template import render_role_template, role_vars
from support.upstream import serve

USER, PASSWORD = "alice", "site-alice-password-01"
SERVER_INFO = {"multipart_uploads_enabled": True, "multipart_downloads_enabled": True}
SLOW_SECONDS = 6


class _Upstream(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output quiet
        pass

    def _answer(self, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/api/3.0/mlflow/server-info"):
            self._answer(json.dumps(SERVER_INFO, separators=(",", ":")).encode(), "application/json")
        elif self.path == "/slow":
            time.sleep(SLOW_SECONDS)
            self._answer(b"slow")
        else:
            self._answer(b"upstream ok")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._answer(b"posted")


@pytest.fixture(scope="module")
def upstream():
    with serve(_Upstream) as address:
        yield address


def _run_role_tasks(tmp_path: Path, tasks_file: str, variables: dict) -> None:
    """Run roles/nginx_proxy/tasks/<tasks_file> on localhost; its handlers are stood in for."""
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": f"Run the nginx_proxy {tasks_file} tasks",
                "ansible.builtin.include_tasks": str(REPO_ROOT / "roles/nginx_proxy/tasks" / tasks_file),
            }
        ],
        # The role's handler reloads the host's nginx; this test runs its own.
        "handlers": [{"name": "Reload nginx", "ansible.builtin.debug": {"msg": "reload skipped"}}],
    }
    proc = run_playbook([play], tmp_path, variables={**role_vars("nginx_proxy"), **variables})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.fixture
def htpasswd(tmp_path) -> Path:
    path = tmp_path / "mlflow.htpasswd"
    path.write_text(f"{USER}:{hf.make_hash(PASSWORD, 'sha512_crypt', 5000)}\n")
    path.chmod(0o644)
    return path


def _site(tmp_path: Path, htpasswd: Path, upstream: str, **overrides) -> tuple[Path, str]:
    site = tmp_path / "mlflow.conf"
    variables = {
        "nginx_proxy_server_name": "localhost",
        "nginx_proxy_upstreams": [upstream],
        "nginx_proxy_htpasswd_path": str(htpasswd),
        **overrides,
    }
    return site, render_role_template("nginx_proxy", "mlflow-site.conf.j2", site, tmp_path, variables)


def _auth() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


def _request(port, method="GET", path="/", *, body=None, headers=None, tls=False, timeout=20):
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_tls_site_on_custom_ports_with_role_certificate(tmp_path, htpasswd, upstream):
    tls_dir = tmp_path / "tls"
    days = 30
    _run_role_tasks(
        tmp_path,
        "tls.yml",
        {
            "_nginx_proxy_tls_dir": str(tls_dir),
            "nginx_proxy_server_name": "localhost",
            "nginx_proxy_tls_self_signed_days": days,
        },
    )
    cert = x509.load_pem_x509_certificate((tls_dir / "mlflow.crt").read_bytes())
    lifetime = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=days - 1) < lifetime <= timedelta(days=days), lifetime

    http_port, https_port = find_free_port(), find_free_port()
    site, text = _site(
        tmp_path,
        htpasswd,
        upstream,
        _nginx_proxy_tls_dir=str(tls_dir),
        nginx_proxy_tls_enabled=True,
        nginx_proxy_http_port=http_port,
        nginx_proxy_https_port=https_port,
    )
    assert f"listen {https_port} ssl http2 default_server;" in text
    with SiteNginx(site, http_port):
        status, headers, _ = _request(http_port, path="/ajax-api/x?y=1")
        assert status == 301
        assert headers["Location"] == f"https://127.0.0.1:{https_port}/ajax-api/x?y=1"
        assert _request(https_port, tls=True)[0] == 401
        status, _, body = _request(https_port, headers=_auth(), tls=True)
        assert (status, body) == (200, b"upstream ok")
        # The certificate nginx serves is the one the role generated, for `days` days.
        pem = ssl.get_server_certificate(("127.0.0.1", https_port))
        assert x509.load_pem_x509_certificate(pem.encode()).not_valid_after_utc == cert.not_valid_after_utc


def test_plain_http_site_limits_and_timeouts(tmp_path, htpasswd, upstream):
    http_port = find_free_port()
    site, text = _site(
        tmp_path,
        htpasswd,
        upstream,
        nginx_proxy_tls_enabled=False,
        nginx_proxy_http_port=http_port,
        nginx_proxy_client_max_body_size="1k",
        nginx_proxy_read_timeout="1s",
        nginx_proxy_artifacts_through_proxy=False,
    )
    assert "ssl" not in text.replace("ssl_", "")
    with SiteNginx(site, http_port):
        status, _, body = _request(http_port, headers=_auth())
        assert (status, body) == (200, b"upstream ok"), "plain HTTP must serve, not redirect"
        # client_max_body_size: 1k passes, 4k is refused before it reaches the upstream.
        assert _request(http_port, "POST", "/p", body=b"x" * 1000, headers=_auth())[0] == 200
        assert _request(http_port, "POST", "/p", body=b"x" * 4096, headers=_auth())[0] == 413
        # read_timeout: an upstream slower than 1s gets 504 in about 1s, not SLOW_SECONDS.
        started = time.monotonic()
        assert _request(http_port, path="/slow", headers=_auth())[0] == 504
        assert time.monotonic() - started < SLOW_SECONDS - 2
        # artifacts_through_proxy off: MLflow's multipart offers pass through unchanged.
        status, _, body = _request(http_port, path="/api/3.0/mlflow/server-info", headers=_auth())
        assert status == 200 and json.loads(body) == SERVER_INFO


def test_default_site_hides_multipart_offers(tmp_path, htpasswd, upstream):
    http_port = find_free_port()
    site, _ = _site(tmp_path, htpasswd, upstream, nginx_proxy_tls_enabled=False, nginx_proxy_http_port=http_port)
    with SiteNginx(site, http_port):
        status, _, body = _request(http_port, path="/api/3.0/mlflow/server-info", headers=_auth())
        assert status == 200
        assert json.loads(body) == {"multipart_uploads_enabled": False, "multipart_downloads_enabled": False}
        # The default 5g limit lets a 4k upload through.
        assert _request(http_port, "POST", "/p", body=b"x" * 4096, headers=_auth())[0] == 200


def test_users_step_hashes_with_the_configured_rounds(tmp_path, upstream):
    path = tmp_path / "users.htpasswd"
    _run_role_tasks(
        tmp_path,
        "users.yml",
        {
            "nginx_proxy_users": [{"name": USER, "password": PASSWORD}],
            "nginx_proxy_htpasswd_path": str(path),
            "nginx_proxy_hash_rounds": 7000,
        },
    )
    stored = path.read_text().strip().split(":", 1)[1]
    assert stored.startswith("$6$rounds=7000$"), stored  # the default (5000) writes no rounds=
    path.chmod(0o644)
    http_port = find_free_port()
    site, _ = _site(tmp_path, path, upstream, nginx_proxy_tls_enabled=False, nginx_proxy_http_port=http_port)
    with SiteNginx(site, http_port):
        assert _request(http_port, headers=_auth())[0] == 200, "nginx must verify the 7000-round hash"


class _Blackhole:
    """A listener whose accept queue is full and never drained: new connections hang in SYN."""

    def __enter__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.fillers = []
        for _ in range(2):  # backlog 0 queues one; the second makes sure
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(filler)
        time.sleep(0.2)
        return self

    def __exit__(self, *exc_info):
        for sock in [*self.fillers, self.listener]:
            sock.close()


def test_connect_timeout(tmp_path, htpasswd):
    with _Blackhole() as hole:
        probe = socket.socket()
        probe.settimeout(1.5)
        with pytest.raises(OSError):
            probe.connect(("127.0.0.1", hole.port))  # the queue is full: connects hang
        probe.close()
        http_port = find_free_port()
        site, _ = _site(
            tmp_path,
            htpasswd,
            f"127.0.0.1:{hole.port}",
            nginx_proxy_tls_enabled=False,
            nginx_proxy_http_port=http_port,
            nginx_proxy_connect_timeout="1s",
        )
        with SiteNginx(site, http_port):
            started = time.monotonic()
            # Default 10s: the client would give up at 5s with a socket timeout instead.
            assert _request(http_port, headers=_auth(), timeout=5)[0] == 504
            assert time.monotonic() - started < 4


def test_send_timeout(tmp_path, htpasswd):
    # An upstream that takes the connection and never reads the request body.
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    http_port = find_free_port()
    site, _ = _site(
        tmp_path,
        htpasswd,
        f"127.0.0.1:{listener.getsockname()[1]}",
        nginx_proxy_tls_enabled=False,
        nginx_proxy_http_port=http_port,
        nginx_proxy_send_timeout="1s",
    )
    size = 64 * 1024 * 1024
    try:
        with SiteNginx(site, http_port):
            client = socket.create_connection(("127.0.0.1", http_port), timeout=15)
            head = f"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in _auth().items()) + "\r\n"
            started = time.monotonic()
            client.sendall(head.encode())
            chunk = b"x" * 65536
            sent = 0
            try:
                while sent < size:
                    client.settimeout(3)
                    client.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass  # nginx stopped reading (buffers full) or already answered and closed
            client.settimeout(15)
            answer = client.recv(200)
            client.close()
            assert answer.startswith(b"HTTP/1.1 504"), answer
            assert time.monotonic() - started < 10  # default 600s
    finally:
        stop.set()
        thread.join()
        for sock in [*accepted, listener]:
            sock.close()
