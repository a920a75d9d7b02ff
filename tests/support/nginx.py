"""A real nginx (Debian's /usr/sbin/nginx) on 127.0.0.1 for tests.

Use the fixture in a test module::

    from support.nginx import nginx_server  # noqa: F401 - fixture

    def test_something(nginx_server, tmp_path):
        server = nginx_server('location / { auth_basic "x"; auth_basic_user_file /tmp/users; }')
        assert server.status("/", "alice", "s3cret") == 200

or the class directly (``with NginxServer(body) as server: ...``).

What it does: writes a minimal nginx.conf into a fresh temp dir (pid file, error log and all
temp paths inside it, ``user root;`` so it runs when the tests run as root; nginx ignores
that line with a warning when they do not) with one ``server {}`` listening on
127.0.0.1:<free port> around the given body, checks it with ``nginx -t``, then runs
``nginx -p <dir> -c <conf> -e <dir>/error.log -g 'daemon off;'`` as a subprocess, waits
until the port answers, and on stop sends SIGTERM (fast shutdown), waits, and removes the dir.

Requests go through http.client, so no proxy from the environment gets in the way.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import tempfile
import time
from base64 import b64encode
from pathlib import Path

import pytest
from conftest import find_free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

_CONF = """\
user root;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 64;
}}
http {{
    access_log off;
    default_type text/plain;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
{body}
    }}
}}
"""


def http_get(port: int, path: str = "/", user: str | None = None, password: str | None = None) -> tuple[int, bytes]:
    """GET http://127.0.0.1:<port><path>, with Basic credentials when `user` is given; (status, body)."""
    headers = {}
    if user is not None:
        token = b64encode(f"{user}:{password or ''}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class NginxError(RuntimeError):
    """nginx refused the configuration or did not start; the message carries its error log."""


class NginxServer:
    """One nginx master process serving `server_body` inside a `server {}` on 127.0.0.1."""

    def __init__(self, server_body: str, *, start_timeout: float = 30.0):
        self.server_body = server_body
        self.start_timeout = start_timeout
        self.prefix = Path(tempfile.mkdtemp(prefix="nginx-test-"))
        self.conf = self.prefix / "nginx.conf"
        self.error_log = self.prefix / "error.log"
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self, *extra: str) -> list[str]:
        return [NGINX, "-p", str(self.prefix), "-c", str(self.conf), "-e", str(self.error_log), *extra]

    def _log_tail(self) -> str:
        try:
            return self.error_log.read_text()[-4000:]
        except OSError:
            return "(no error log)"

    def render_conf(self) -> str:
        """The nginx.conf text for the current port; subclasses may serve a whole site file instead."""
        return _CONF.format(prefix=self.prefix, port=self.port, body=self.server_body)

    def start(self) -> NginxServer:
        # A free port can be taken between the probe and nginx's bind: try a few.
        for _attempt in range(3):
            self.port = find_free_port()
            self.conf.write_text(self.render_conf())
            check = subprocess.run(self._command("-t", "-q"), capture_output=True, text=True, check=False)
            if check.returncode != 0:
                self.stop()
                raise NginxError(f"nginx -t failed:\n{check.stderr}")
            self.proc = subprocess.Popen(
                self._command("-g", "daemon off;"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            if self._wait_until_listening():
                return self
            self._terminate()
            if "Address already in use" not in self._log_tail():
                break
        log = self._log_tail()
        self.stop()
        raise NginxError(f"nginx did not start on 127.0.0.1:{self.port}:\n{log}")

    def _wait_until_listening(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.02)
        return False

    def _terminate(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: fast shutdown of master and workers
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.prefix, ignore_errors=True)

    def __enter__(self) -> NginxServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def request(self, path: str = "/", user: str | None = None, password: str | None = None):
        """GET `path`, with Basic credentials when `user` is given; return (status, body bytes)."""
        return http_get(self.port, path, user, password)

    def status(self, path: str = "/", user: str | None = None, password: str | None = None) -> int:
        return self.request(path, user, password)[0]


@pytest.fixture
def nginx_server():
    """Return a factory: nginx_server(server_body) -> a started NginxServer, stopped after the test."""
    servers: list[NginxServer] = []

    def _start(server_body: str) -> NginxServer:
        server = NginxServer(server_body)
        servers.append(server)
        return server.start()

    yield _start
    for server in servers:
        server.stop()


class SiteNginx(NginxServer):
    """A real nginx serving the role's whole site file at http{} level, on the site's own port."""

    def __init__(self, site: Path, port: int):
        super().__init__("")
        self.site = site
        self.site_port = port

    def render_conf(self) -> str:
        self.port = self.site_port  # the site listens where the role told it to
        conf = _CONF.format(prefix=self.prefix, port=find_free_port(), body="")
        return conf.replace("    server {", f"    include {self.site};\n    server {{", 1)

    @property
    def reload_command(self) -> list[str]:
        return self._command("-s", "reload")
