"""nginx_proxy's TLS certificate expiry metric, for monitoring's CertificateExpiring alert.

The role's tasks (tasks_from tls_metric.yml) run on localhost through ansible-playbook against a
real self-signed certificate (openssl) and a temp directory standing for node exporter's textfile
collector (_nginx_proxy_textfile_dir). Checked: check mode reports the file and writes nothing;
the apply writes mlops-tls-certificate.prom (0644) with the certificate's notAfter as openssl
prints it, in Unix seconds; the next apply and check mode change nothing; a new certificate
changes the file; no directory, no file; metrics off removes it. The ACME renewal script
(files/nginx-proxy-acme-renew), run with a stand-in certbot, rewrites the same file with the same
lines for the new certificate, and leaves it alone when its settings have no metrics_file. The
file's series, labelled as a node exporter scrape labels it, makes the monitoring role's
CertificateExpiring rule fire under promtool with the file's path label.
"""

from __future__ import annotations

import calendar
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, changed_tasks, run_playbook, task_results
from prometheus_client.parser import text_string_to_metric_families
from support.role_template import render_role_template
from test_monitoring_rules import _alert, _node, _promtool_test, _render

METRIC = "mlops_tls_certificate_expiry_timestamp_seconds"
FILE = "mlops-tls-certificate.prom"
SCRIPT = REPO_ROOT / "roles" / "nginx_proxy" / "files" / "nginx-proxy-acme-renew"
WRITE = "Write the TLS certificate expiry metric"


def _certificate(path: Path, days: int) -> Path:
    key = path.with_suffix(".key")
    request = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    subprocess.run(
        [*request, "-days", str(days), "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def _openssl_not_after(cert: Path) -> int:
    """`openssl x509 -enddate -noout` (notAfter=Dec  2 03:40:00 2027 GMT) in Unix seconds."""
    out = subprocess.run(
        ["openssl", "x509", "-enddate", "-noout", "-in", str(cert)], check=True, capture_output=True, text=True
    ).stdout
    value = out.strip().split("=", 1)[1]
    return calendar.timegm(time.strptime(value, "%b %d %H:%M:%S %Y %Z"))


def _expected(cert: Path) -> str:
    return (
        f"# HELP {METRIC} Expiry (notAfter) of the TLS certificate nginx serves, in Unix seconds.\n"
        f"# TYPE {METRIC} gauge\n"
        f'{METRIC}{{path="{cert}"}} {_openssl_not_after(cert)}\n'
    )


@pytest.fixture
def textfiles(tmp_path) -> Path:
    path = tmp_path / "node-exporter"
    path.mkdir()
    return path


@pytest.fixture
def cert(tmp_path) -> Path:
    return _certificate(tmp_path / "mlflow.crt", 90)


def _step(tmp_path: Path, cert: Path, textfiles: Path, *, check: bool = False, **overrides) -> list[tuple[str, dict]]:
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Run the nginx_proxy TLS metric step",
                "ansible.builtin.include_role": {"name": "mlops.mlflow.nginx_proxy", "tasks_from": "tls_metric.yml"},
            }
        ],
    }
    variables = {
        "nginx_proxy_metrics_enabled": True,
        "nginx_proxy_tls_enabled": True,
        "nginx_proxy_tls_certificate": str(cert),
        "nginx_proxy_tls_certificate_key": str(cert.with_suffix(".key")),
        "_nginx_proxy_textfile_dir": str(textfiles),
        **overrides,
    }
    proc = run_playbook([play], tmp_path, variables=variables, check=check)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return task_results(proc)


def _snapshot(path: Path) -> tuple[bytes, int, int]:
    stat = path.stat()
    return path.read_bytes(), stat.st_mtime_ns, stat.st_ino


def test_check_then_apply_then_apply_again(tmp_path, cert, textfiles):
    prom = textfiles / FILE
    assert changed_tasks(_step(tmp_path, cert, textfiles, check=True)) == [WRITE]
    assert not prom.exists(), "check mode must write nothing"

    assert changed_tasks(_step(tmp_path, cert, textfiles)) == [WRITE]
    assert prom.read_text() == _expected(cert)
    assert prom.stat().st_mode & 0o777 == 0o644
    samples = [s for family in text_string_to_metric_families(prom.read_text()) for s in family.samples]
    assert [(s.name, s.labels, s.value) for s in samples] == [(METRIC, {"path": str(cert)}, _openssl_not_after(cert))]
    assert sorted(p.name for p in textfiles.iterdir()) == [FILE]

    before = _snapshot(prom)
    assert changed_tasks(_step(tmp_path, cert, textfiles)) == []
    assert changed_tasks(_step(tmp_path, cert, textfiles, check=True)) == []
    assert _snapshot(prom) == before


def test_a_new_certificate_rewrites_the_file(tmp_path, cert, textfiles):
    _step(tmp_path, cert, textfiles)
    old = (textfiles / FILE).read_text()
    _certificate(cert, 30)
    assert changed_tasks(_step(tmp_path, cert, textfiles)) == [WRITE]
    assert (textfiles / FILE).read_text() == _expected(cert) != old


def test_check_mode_reports_a_certificate_not_there_yet(tmp_path, textfiles):
    ran = _step(tmp_path, tmp_path / "missing.crt", textfiles, check=True)
    assert changed_tasks(ran) == ["Report the TLS certificate expiry metric a run would write"]
    assert list(textfiles.iterdir()) == []


def test_no_textfile_directory_no_file(tmp_path, cert):
    missing = tmp_path / "no-node-exporter"
    assert changed_tasks(_step(tmp_path, cert, missing)) == []
    assert not missing.exists()


@pytest.mark.parametrize("off", ["nginx_proxy_metrics_enabled", "nginx_proxy_tls_enabled"])
def test_metrics_or_tls_off_removes_the_file(tmp_path, cert, textfiles, off):
    _step(tmp_path, cert, textfiles)
    assert changed_tasks(_step(tmp_path, cert, textfiles, check=True, **{off: False})) == [
        "Remove the TLS certificate expiry metric"
    ]
    assert (textfiles / FILE).exists()
    _step(tmp_path, cert, textfiles, **{off: False})
    assert not (textfiles / FILE).exists()
    assert changed_tasks(_step(tmp_path, cert, textfiles, **{off: False})) == []


def _renew(tmp_path: Path, cert: Path, textfiles: Path, metrics: bool) -> subprocess.CompletedProcess:
    """Run the renewal script, forced, with a certbot that puts a new 60-day pair in its lineage."""
    state = tmp_path / "acme-state"
    live = state / "config" / "live" / "mlflow"
    live.mkdir(parents=True, exist_ok=True)
    certbot = tmp_path / "certbot"
    certbot.write_text(
        "#!/bin/sh\n"
        f"exec openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 60 -subj /CN=localhost"
        f" -keyout {live}/privkey.pem -out {live}/fullchain.pem 2>/dev/null\n"
    )
    certbot.chmod(0o755)
    settings = {
        "directory_url": "https://acme.invalid/dir",
        "email": "",
        "domains": ["localhost"],
        "ca_bundle": "",
        "renew_days": 30,
        "cert_name": "mlflow",
        "webroot": str(tmp_path / "webroot"),
        "state_dir": str(state),
        "certificate": str(cert),
        "certificate_key": str(cert.with_suffix(".key")),
        "certbot": str(certbot),
        "reload_command": ["true"],
        "metrics_file": str(textfiles / FILE) if metrics else "",
    }
    (tmp_path / "acme-renew.json").write_text(json.dumps(settings))
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--force", "--config", str(tmp_path / "acme-renew.json")],
        capture_output=True,
        text=True,
        check=False,
    )


def test_renewal_script_rewrites_the_metric_as_the_role_does(tmp_path, cert, textfiles):
    _step(tmp_path, cert, textfiles)
    old = (textfiles / FILE).read_text()
    proc = _renew(tmp_path, cert, textfiles, metrics=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"wrote its expiry to {textfiles / FILE}" in proc.stdout
    assert (textfiles / FILE).read_text() == _expected(cert) != old  # the new, 60-day certificate
    assert (textfiles / FILE).stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in textfiles.iterdir()) == [FILE]  # no temp file left
    # The converge after the renewal finds the same lines: nothing to change.
    assert changed_tasks(_step(tmp_path, cert, textfiles)) == []


def test_renewal_script_without_metrics_writes_none(tmp_path, cert, textfiles):
    proc = _renew(tmp_path, cert, textfiles, metrics=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "wrote its expiry" not in proc.stdout
    assert list(textfiles.iterdir()) == []


@pytest.mark.parametrize("enabled", [True, False])
def test_renewal_settings_name_the_metrics_file_only_with_metrics_on(tmp_path, enabled):
    text = render_role_template(
        "nginx_proxy",
        "acme-renew.json.j2",
        tmp_path / "acme-renew.json",
        tmp_path,
        {"nginx_proxy_metrics_enabled": enabled},
    )
    expected = "/var/lib/prometheus/node-exporter/" + FILE if enabled else ""
    assert json.loads(text)["metrics_file"] == expected


def test_certificate_expiring_fires_on_the_written_series(tmp_path, textfiles):
    """The series as node exporter's scrape labels it (job, instance, host): promtool's clock starts
    at 0, so each value is the certificate's time left, from the file."""
    soon, later = _certificate(tmp_path / "soon.crt", 3), _certificate(tmp_path / "later.crt", 90)
    series = []
    for cert in (soon, later):
        _step(tmp_path, cert, textfiles)
        (family,) = text_string_to_metric_families((textfiles / FILE).read_text())
        (sample,) = family.samples
        labels = _node("a", **sample.labels)
        series.append({"series": f"{sample.name}{labels}", "values": f"{int(sample.value - time.time())}x10"})
    assert all(s["series"].startswith(METRIC + "{") for s in series)
    rules = _render(tmp_path)
    _promtool_test(
        tmp_path, rules, "CertificateExpiring", series, [("5m", [_alert("node", "a", 9100, "warning", path=str(soon))])]
    )
