"""nginx_proxy's ACME certificates, against a real ACME server (Debian's pebble) and a real nginx.

The role's own tasks run on localhost into a temp directory: preflight.yml (the directory probe)
and tls.yml (the placeholder pair) as in test_nginx_proxy_site.py, then the role's acme.yml
through import_role (it includes mlops.mlflow._systemd, which wants a parent role). The site is
the role's template, served by Debian's nginx on the ports pebble validates http-01 on. systemd
does not run here: the renewal job is turned off with an extra var (its units are
_systemd's tests' business), and nginx is reloaded with ``nginx -s reload`` instead of systemctl.

Checked: check mode on a fresh host announces the placeholder and the issuance and writes
nothing; the first apply gets a certificate from pebble through certbot, validated over http-01
against nginx's webroot; a client verifies the certificate nginx serves against pebble's root;
apply again and check mode change nothing. The renewal script (the timer's command) leaves a
certificate that is not due alone and renews one that expires within renew_days. A forced renewal
replaces the certificate (new serial) while /health, sampled over new TLS connections all along,
never fails. An ACME directory that does not answer fails the run with a message naming
nginx_proxy_acme_directory_url (or the user's mlops_acme_directory_url, when the layout set it from
that knob), before anything changes: the certificate, settings and the site nginx serves stay as
they were.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from conftest import REPO_ROOT, find_free_port, run_playbook
from cryptography import x509
from support.nginx import SiteNginx
from support.pebble import Pebble
from support.role_template import render_role_template, role_vars
from support.upstream import serve

pytestmark = pytest.mark.integration

TASKS = REPO_ROOT / "roles" / "nginx_proxy" / "tasks"
DOMAIN = "localhost"  # resolves to loopback, where pebble's validator finds nginx
USER, PASSWORD = "alice", "acme-alice-password-01"
ISSUE = "Issue or renew the ACME certificate and reload nginx"
REPORT = "Report the ACME certificate a run would issue or renew"
PLACEHOLDER = "Write a self-signed placeholder for the ACME certificate"


class _Health(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")


@pytest.fixture(scope="module")
def upstream():
    with serve(_Health) as address:
        yield address


@pytest.fixture
def needs():
    for tool in ("pebble", "certbot", "nginx", "openssl"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            pytest.skip(f"{tool} is needed (apt-get install pebble certbot nginx-light openssl)")
    if os.geteuid() != 0:
        pytest.skip("the test nginx runs as root (user root;)")


def _plays(acme: bool = True) -> list[dict]:
    stand_in = [{"name": "Reload nginx", "ansible.builtin.debug": {"msg": "reload skipped: the test reloads nginx"}}]
    plays = [
        {
            "name": "preflight and TLS steps",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {"name": "Run preflight.yml", "ansible.builtin.include_tasks": str(TASKS / "preflight.yml")},
                {"name": "Run tls.yml", "ansible.builtin.include_tasks": str(TASKS / "tls.yml")},
            ],
            "handlers": stand_in,
        }
    ]
    if acme:
        plays.append(
            {
                "name": "ACME step",
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [{"ansible.builtin.import_role": {"name": "mlops.mlflow.nginx_proxy", "tasks_from": "acme"}}],
            }
        )
    return plays


def _run(tmp_path: Path, variables: dict, *, check: bool = False, acme: bool = True) -> tuple[int, list, str]:
    """(rc, [(task name, changed)] of the tasks that ran, output)."""
    proc = run_playbook(_plays(acme), tmp_path, variables={**role_vars("nginx_proxy"), **variables}, check=check)
    ran = []
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        return proc.returncode, ran, proc.stdout + proc.stderr
    for play in report["plays"]:
        for task in play["tasks"]:
            result = task["hosts"].get("localhost", {})
            if not result.get("skipped"):
                ran.append((task["task"]["name"].split(" : ", 1)[-1], bool(result.get("changed"))))
    return proc.returncode, ran, proc.stdout[-6000:] + proc.stderr[-2000:]


def _changed(ran: list) -> list[str]:
    return [name for name, changed in ran if changed]


def _client_context(root_pem: bytes) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=root_pem.decode())
    context.check_hostname = True
    return context


def _get_health(port: int, context: ssl.SSLContext) -> tuple[int, int]:
    """(status, serial of the certificate the server presented): a new, verified TLS connection."""
    conn = http.client.HTTPSConnection(DOMAIN, port, timeout=30, context=context)
    try:
        # The certificate before the request: an answer with "Connection: close" (nginx reloading
        # drops keepalive) closes the socket as it is read, and conn.sock is None after it.
        conn.connect()
        der = conn.sock.getpeercert(binary_form=True)
        conn.request("GET", "/health")
        response = conn.getresponse()
        response.read()
        return response.status, x509.load_der_x509_certificate(der).serial_number
    finally:
        conn.close()


def _until_samples(taken, count: int, timeout: float = 120) -> None:
    """Wait until the sampler has taken `count` answers."""
    deadline = time.monotonic() + timeout
    while taken() < count:
        assert time.monotonic() < deadline, f"the /health sampler took {taken()} answers, not {count}, in {timeout}s"
        time.sleep(0.05)


def _wait_for_serial(port: int, context: ssl.SSLContext, serial: int, timeout: float = 60) -> tuple[int, int]:
    """What the server answers once it presents `serial`: nginx -s reload returns before the
    master has loaded the new configuration (systemctl reload nginx too)."""
    deadline = time.monotonic() + timeout
    answer = _get_health(port, context)
    while answer[1] != serial and time.monotonic() < deadline:
        time.sleep(0.1)
        answer = _get_health(port, context)
    return answer


def _serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def _acme_variables(tmp_path: Path, pebble: Pebble, nginx: SiteNginx, upstream, http_port: int, https_port: int):
    """The role's variables for an ACME site at pebble, everything it writes under tmp_path."""
    (tmp_path / "sbin").mkdir(exist_ok=True)
    return {
        "nginx_proxy_server_name": DOMAIN,
        "nginx_proxy_users": [{"name": USER, "password": PASSWORD}],
        "nginx_proxy_upstreams": [upstream],
        "nginx_proxy_htpasswd_path": str(tmp_path / "mlflow.htpasswd"),
        "nginx_proxy_health_unauthenticated": True,
        "nginx_proxy_http_port": http_port,
        "nginx_proxy_https_port": https_port,
        "nginx_proxy_acme_enabled": True,
        "nginx_proxy_acme_directory_url": pebble.directory_url,
        "nginx_proxy_acme_ca_bundle": str(pebble.tls_ca),
        "nginx_proxy_acme_email": "ops@example.org",
        "nginx_proxy_acme_domains": [DOMAIN],
        "nginx_proxy_acme_renew_days": 30,
        "nginx_proxy_acme_on_calendar": "*-*-* 04:00:00",
        "_nginx_proxy_tls_dir": str(tmp_path / "tls"),
        "_nginx_proxy_acme_state_dir": str(tmp_path / "acme-state"),
        "_nginx_proxy_acme_script": str(tmp_path / "sbin" / "nginx-proxy-acme-renew"),
        "_nginx_proxy_acme_settings": str(tmp_path / "acme-renew.json"),
        "_nginx_proxy_acme_reload_command": nginx.reload_command,
        # No systemd here: the timer's units are _systemd's tests' business.
        "_systemd_job_enabled": False,
        "__systemd_job_unit_dir": str(tmp_path / "units"),
    }


def test_acme_certificate_issue_serve_renew(tmp_path, needs, upstream):
    http_port, https_port = find_free_port(), find_free_port()
    pebble = Pebble(http_port).start()
    tls_dir, state = tmp_path / "tls", tmp_path / "acme-state"
    site_file = tmp_path / "mlflow.conf"
    nginx = SiteNginx(site_file, http_port)
    settings = tmp_path / "acme-renew.json"
    variables = _acme_variables(tmp_path, pebble, nginx, upstream, http_port, https_port)
    cert = tls_dir / "acme.crt"
    try:
        # Check mode on a fresh host: the placeholder and the issuance announced, nothing written.
        rc, ran, out = _run(tmp_path, variables, check=True)
        assert rc == 0, out
        assert PLACEHOLDER in _changed(ran) and REPORT in _changed(ran), ran
        assert not cert.exists() and not state.exists() and not settings.exists()

        # The placeholder first (tls.yml runs before the site), so nginx can start with the site.
        rc, ran, out = _run(tmp_path, variables, acme=False)
        assert rc == 0, out
        placeholder = x509.load_pem_x509_certificate(cert.read_bytes())
        assert placeholder.issuer == placeholder.subject
        text = render_role_template("nginx_proxy", "mlflow-site.conf.j2", site_file, tmp_path, variables)
        assert "location ^~ /.well-known/acme-challenge/" in text
        nginx.start()

        rc, ran, out = _run(tmp_path, variables)
        assert rc == 0, out
        assert ISSUE in _changed(ran), ran
        assert REPORT not in dict(ran)
        issued = x509.load_pem_x509_certificate(cert.read_bytes())
        assert issued.issuer != issued.subject
        san = issued.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [DOMAIN]
        assert oct((tls_dir / "acme.key").stat().st_mode & 0o777) == "0o600"

        # nginx serves it (reloaded by the script), and it verifies against pebble's root.
        context = _client_context(pebble.root_pem())
        assert _wait_for_serial(https_port, context, issued.serial_number) == (200, issued.serial_number)

        rc, ran, out = _run(tmp_path, variables)
        assert rc == 0, out
        assert _changed(ran) == [], "second converge changed something"
        rc, ran, out = _run(tmp_path, variables, check=True)
        assert rc == 0, out
        assert _changed(ran) == [], "check mode after a converge announces a change"

        # The timer's command: not due, nothing happens; due within renew_days, renewed.
        script = [str(tmp_path / "sbin" / "nginx-proxy-acme-renew"), "--config", str(settings)]
        proc = subprocess.run(script, capture_output=True, text=True, check=False)
        assert proc.returncode == 0 and "is not due" in proc.stdout, proc.stdout + proc.stderr
        assert _serial(cert) == issued.serial_number
        soon = json.loads(settings.read_text()) | {"renew_days": 100000}  # pebble's certificates last 5 years
        (tmp_path / "soon.json").write_text(json.dumps(soon))
        proc = subprocess.run([script[0], "--config", str(tmp_path / "soon.json")], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "expires in" in proc.stdout
        renewed_by_timer = _serial(cert)
        assert renewed_by_timer != issued.serial_number
        assert _wait_for_serial(https_port, context, renewed_by_timer) == (200, renewed_by_timer)

        # A forced renewal through the role, with /health sampled all along on new connections.
        samples: list = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                try:
                    samples.append(_get_health(https_port, context))
                except Exception as exc:  # any failure is a sample (a dead sampler would wait for ever)
                    samples.append(("failed", repr(exc)))
                time.sleep(0.01)

        def taken() -> int:
            return len(samples)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _until_samples(taken, 5)  # answers before the renewal starts
        rc, ran, out = _run(tmp_path, variables | {"nginx_proxy_acme_force_renewal": True})
        # Answers after it, while nginx's old workers finish and the new ones take over. A count,
        # not a time: on a loaded machine one verified TLS request may take seconds.
        _until_samples(taken, taken() + 10)
        stop.set()
        sampler.join(timeout=60)
        assert rc == 0, out
        assert ISSUE in _changed(ran), ran
        forced = _serial(cert)
        assert forced != renewed_by_timer
        failures = [s for s in samples if s[0] != 200]
        assert not failures, failures[:5]
        assert len(samples) >= 15, len(samples)
        # Under load, workers of an earlier reload may still take a new connection for a while
        # (nginx's reload is asynchronous): every answer carries one of this test's certificates,
        # none fails, and the forced one is what nginx serves once the reload has settled.
        seen = {serial for _, serial in samples}
        assert seen <= {issued.serial_number, renewed_by_timer, forced}, (seen, issued.serial_number, renewed_by_timer)
        assert _wait_for_serial(https_port, context, forced) == (200, forced)

        # An ACME directory that does not answer: a clear failure, and nothing changed.
        before = {path: path.read_bytes() for path in (cert, tls_dir / "acme.key", settings)}
        dead = variables | {"nginx_proxy_acme_directory_url": f"https://localhost:{find_free_port()}/dir"}
        rc, ran, out = _run(tmp_path, dead)
        assert rc != 0
        assert "nginx_proxy_acme_directory_url" in out and "does not answer as an ACME directory" in out, out
        assert _changed(ran) == [], ran
        assert {path: path.read_bytes() for path in before} == before
        assert _wait_for_serial(https_port, context, forced) == (200, forced)
        # The same for a URL that answers, but not as an ACME directory (nginx's own /health).
        rc, ran, out = _run(tmp_path, variables | {"nginx_proxy_acme_directory_url": f"http://127.0.0.1:{http_port}/"})
        assert rc != 0 and "nginx_proxy_acme_directory_url" in out, out
        assert {path: path.read_bytes() for path in before} == before
        # Set by mlops.mlflow.site from the user's knob (the layout records it in mlops_layout_origins):
        # the message names the knob the user wrote.
        origins = {"nginx_proxy_acme_directory_url": "mlops_acme_directory_url"}
        rc, ran, out = _run(tmp_path, dead | {"mlops_layout_origins": origins})
        assert rc != 0 and "mlops_acme_directory_url https://localhost:" in out and "mlops_acme_ca_bundle" in out, out
        assert {path: path.read_bytes() for path in before} == before
    finally:
        nginx.stop()
        pebble.stop()


def test_acme_external_account_binding(tmp_path, needs, upstream):
    """An ACME server that requires an external account binding (pebble with EAB keys): without one
    the run fails and the placeholder stays; with nginx_proxy_acme_eab_kid and _hmac_key certbot binds
    the account and the certificate is issued. The HMAC key stays in a root-only file certbot reads,
    out of the settings file and of the run's output."""
    http_port, https_port = find_free_port(), find_free_port()
    kid, hmac_key = "kid-mlops-1", base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    pebble = Pebble(http_port, eab={kid: hmac_key}).start()
    site_file = tmp_path / "mlflow.conf"
    nginx = SiteNginx(site_file, http_port)
    variables = _acme_variables(tmp_path, pebble, nginx, upstream, http_port, https_port)
    cert, eab_file = tmp_path / "tls" / "acme.crt", tmp_path / "acme-state" / "config" / "eab.ini"
    try:
        rc, _ran, out = _run(tmp_path, variables, acme=False)
        assert rc == 0, out
        render_role_template("nginx_proxy", "mlflow-site.conf.j2", site_file, tmp_path, variables)
        nginx.start()
        placeholder = cert.read_bytes()

        rc, ran, out = _run(tmp_path, variables)
        assert rc != 0 and ISSUE in dict(ran), out  # refused by the server: no binding
        assert cert.read_bytes() == placeholder and not eab_file.exists()

        bound = variables | {"nginx_proxy_acme_eab_kid": kid, "nginx_proxy_acme_eab_hmac_key": hmac_key}
        rc, ran, out = _run(tmp_path, bound)
        assert rc == 0, out
        issued = x509.load_pem_x509_certificate(cert.read_bytes())
        assert issued.issuer != issued.subject
        context = _client_context(pebble.root_pem())
        assert _wait_for_serial(https_port, context, issued.serial_number) == (200, issued.serial_number)
        assert oct(eab_file.stat().st_mode & 0o777) == "0o600"
        assert f"eab-kid = {kid}" in eab_file.read_text()
        assert hmac_key not in (tmp_path / "acme-renew.json").read_text()
        assert hmac_key not in out
        rc, ran, out = _run(tmp_path, bound)
        assert rc == 0 and _changed(ran) == [], ran

        # Half a binding is refused before anything changes, naming both variables.
        rc, ran, out = _run(tmp_path, bound | {"nginx_proxy_acme_eab_hmac_key": ""})
        assert rc != 0 and "nginx_proxy_acme_eab_kid and" in out and "nginx_proxy_acme_eab_hmac_key go together" in out
        assert _changed(ran) == [] and eab_file.exists()
    finally:
        nginx.stop()
        pebble.stop()


def test_site_answers_challenges_only_with_acme(tmp_path):
    """Default behaviour unchanged: no challenge location (and the self-signed pair) unless ACME is on."""
    base = {"nginx_proxy_server_name": DOMAIN, "nginx_proxy_htpasswd_path": "/etc/nginx/mlflow.htpasswd"}
    off = render_role_template("nginx_proxy", "mlflow-site.conf.j2", tmp_path / "off.conf", tmp_path, base)
    assert "acme-challenge" not in off
    assert "ssl_certificate /etc/nginx/tls/mlflow.crt;" in off
    on = render_role_template(
        "nginx_proxy", "mlflow-site.conf.j2", tmp_path / "on.conf", tmp_path, base | {"nginx_proxy_acme_enabled": True}
    )
    challenge = on.index("location ^~ /.well-known/acme-challenge/")
    assert challenge < on.index("return 301"), "the challenge must be answered before the redirect"
    assert "root /var/lib/mlops-nginx-acme/webroot;" in on
    assert "ssl_certificate /etc/nginx/tls/acme.crt;" in on and "ssl_certificate_key /etc/nginx/tls/acme.key;" in on
