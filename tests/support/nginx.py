"""A real nginx on 127.0.0.1 for tests: `NginxServer(conf_body).start()` / `.stop()`.

The server runs from a throwaway prefix directory with its own pid, logs and temp
paths, as root's worker user (tests run as root), and serves the given `server {}`
body on a free port.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

from conftest import find_free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

_MAIN_CONF = """
user root;
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
{body}
    }}
}}
"""


class NginxServer:
    def __init__(self, server_body: str):
        self.prefix = Path(tempfile.mkdtemp(prefix="nginx-test-"))
        self.port = find_free_port()
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(_MAIN_CONF.format(prefix=self.prefix, port=self.port, body=server_body))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> NginxServer:
        subprocess.run([NGINX, "-t", "-q", "-p", str(self.prefix), "-c", str(self.conf)], check=True)
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.prefix), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not start; see {self.prefix / 'error.log'}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None
        shutil.rmtree(self.prefix, ignore_errors=True)

    def status(self, path: str = "/", user: str | None = None, password: str | None = None) -> int:
        request = urllib.request.Request(self.url + path)
        if user is not None:
            token = b64encode(f"{user}:{password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code
