"""The monitoring role's alert rules, rendered from its template, under `promtool test rules`.

Each alert gets series that make it fire on one host and stay silent on another (or not yet, for
a `for:` that has not elapsed). The cases compare labels: their copy of the rules drops the
annotations (promtool would compare those word for word); that every rule has them, and that
their templates parse, is checked on the full file.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from support.role_template import render_role_template

PROMTOOL = "/usr/bin/promtool"
DAY = 86400
ALERTS = [
    "MLflowDown",
    "TargetDown",
    "MLflow5xxRatio",
    "MLflowLatencyHigh",
    "DiskAlmostFull",
    "BackupStale",
    "CertificateExpiring",
    "ReconvergeFailed",
    "DriftFound",
]


def _labels(job: str, host: str, port: int, **extra: str) -> str:
    pairs = {"job": job, "instance": f"{host}:{port}", "host": host, **extra}
    return "{" + ", ".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"


def _alert(job: str, host: str, port: int, severity: str, **extra: str) -> dict:
    return {"exp_labels": {"job": job, "instance": f"{host}:{port}", "host": host, "severity": severity, **extra}}


def _node(host: str, **extra: str) -> str:
    return _labels("node", host, 9100, **extra)


def _buckets(host: str, per_minute: dict[str, int]) -> list[dict]:
    return [
        {
            "series": f"mlflow_http_request_duration_seconds_bucket{_labels('mlflow', host, 5000, le=le)}",
            "values": f"0+{rate}x30",
        }
        for le, rate in per_minute.items()
    ]


# alert: (input series, [(eval_time, expected alerts)])
CASES = {
    "MLflowDown": (
        [
            {"series": f"up{_labels('mlflow', 'a', 5000)}", "values": "0x10"},
            {"series": f"up{_labels('mlflow', 'b', 5000)}", "values": "1x10"},
            {"series": f"up{_labels('node', 'a', 9100)}", "values": "1x10"},
        ],
        # Down for 1 min of the 2 min `for:`: not yet; after 5 min it fires for a only.
        [("1m", []), ("5m", [_alert("mlflow", "a", 5000, "critical")])],
    ),
    "TargetDown": (
        [
            {"series": f"up{_labels('node', 'a', 9100)}", "values": "0x10"},
            {"series": f"up{_labels('postgres', 'b', 9187)}", "values": "1x10"},
            {"series": f"up{_labels('mlflow', 'b', 5000)}", "values": "0x10"},
        ],
        [("1m", []), ("5m", [_alert("node", "a", 9100, "warning")])],
    ),
    "MLflow5xxRatio": (
        [
            # a: 10 % of requests fail; b: 1 %.
            {"series": f"mlflow_http_request_total{_labels('mlflow', 'a', 5000, status='500')}", "values": "0+10x30"},
            {"series": f"mlflow_http_request_total{_labels('mlflow', 'a', 5000, status='200')}", "values": "0+90x30"},
            {"series": f"mlflow_http_request_total{_labels('mlflow', 'b', 5000, status='503')}", "values": "0+1x30"},
            {"series": f"mlflow_http_request_total{_labels('mlflow', 'b', 5000, status='200')}", "values": "0+99x30"},
        ],
        [("8m", []), ("20m", [_alert("mlflow", "a", 5000, "warning")])],
    ),
    "MLflowLatencyHigh": (
        _buckets("a", {"0.5": 0, "1.0": 0, "2.5": 1, "5.0": 10, "+Inf": 10})
        + _buckets("b", {"0.5": 9, "1.0": 10, "2.5": 10, "5.0": 10, "+Inf": 10}),
        [("8m", []), ("20m", [_alert("mlflow", "a", 5000, "warning")])],
    ),
    "DiskAlmostFull": (
        [
            # a's / is 90 % used, b's 50 %, a's tmpfs 99 % (not a disk).
            {"series": f"node_filesystem_avail_bytes{_node('a', mountpoint='/', fstype='ext4')}", "values": "10x30"},
            {"series": f"node_filesystem_size_bytes{_node('a', mountpoint='/', fstype='ext4')}", "values": "100x30"},
            {"series": f"node_filesystem_avail_bytes{_node('b', mountpoint='/', fstype='ext4')}", "values": "50x30"},
            {"series": f"node_filesystem_size_bytes{_node('b', mountpoint='/', fstype='ext4')}", "values": "100x30"},
            {"series": f"node_filesystem_avail_bytes{_node('a', mountpoint='/run', fstype='tmpfs')}", "values": "1x30"},
            {
                "series": f"node_filesystem_size_bytes{_node('a', mountpoint='/run', fstype='tmpfs')}",
                "values": "100x30",
            },
        ],
        [
            ("5m", []),
            ("15m", [_alert("node", "a", 9100, "warning", mountpoint="/", fstype="ext4")]),
        ],
    ),
    "BackupStale": (
        [
            # Hourly jobs at 3 h: db's last success is 3 h old (stale), srv's 1 h (fresh).
            {
                "series": f"mlops_backup_last_success_timestamp_seconds{_node('db', exported_job='pg-backup')}",
                "values": "0x200",
            },
            {"series": f"mlops_backup_interval_seconds{_node('db', exported_job='pg-backup')}", "values": "3600x200"},
            {
                "series": f"mlops_backup_last_success_timestamp_seconds{_node('srv', exported_job='sqlite-backup')}",
                "values": "7200x200",
            },
            {
                "series": f"mlops_backup_interval_seconds{_node('srv', exported_job='sqlite-backup')}",
                "values": "3600x200",
            },
        ],
        [("1h", []), ("3h", [_alert("node", "db", 9100, "critical", exported_job="pg-backup")])],
    ),
    "CertificateExpiring": (
        [
            {
                "series": f"mlops_tls_certificate_expiry_timestamp_seconds{_node('a', path='/etc/ssl/soon.pem')}",
                "values": f"{13 * DAY}x10",
            },
            {
                "series": f"mlops_tls_certificate_expiry_timestamp_seconds{_node('a', path='/etc/ssl/later.pem')}",
                "values": f"{30 * DAY}x10",
            },
        ],
        [("5m", [_alert("node", "a", 9100, "warning", path="/etc/ssl/soon.pem")])],
    ),
    "ReconvergeFailed": (
        [
            {"series": f"mlops_reconverge_last_run_success{_node('a')}", "values": "0x10"},
            {"series": f"mlops_reconverge_last_run_success{_node('b')}", "values": "1x10"},
        ],
        [("5m", [_alert("node", "a", 9100, "warning")])],
    ),
    "DriftFound": (
        [
            {"series": f"mlops_reconverge_drift_changed_tasks{_node('a')}", "values": "3x10"},
            {"series": f"mlops_reconverge_drift_changed_tasks{_node('b')}", "values": "0x10"},
        ],
        [("5m", [_alert("node", "a", 9100, "warning")])],
    ),
}


def _render(tmp_path: Path, overrides: dict | None = None) -> Path:
    rules = tmp_path / "rules.yml"
    render_role_template("monitoring", "mlops-mlflow-rules.yml.j2", rules, tmp_path, overrides)
    return rules


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    return _render(tmp_path_factory.mktemp("rules"))


def _promtool_test(tmp_path: Path, rules: Path, alert: str, series: list[dict], evals: list) -> None:
    text = yaml.safe_load(rules.read_text())
    for group in text["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    bare = tmp_path / "bare-rules.yml"
    bare.write_text(yaml.safe_dump(text))
    case = {
        "rule_files": [str(bare)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": at, "alertname": alert, "exp_alerts": expected} for at, expected in evals
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(case))
    proc = subprocess.run([PROMTOOL, "test", "rules", str(tmp_path / "test.yml")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_has_a_case():
    assert sorted(CASES) == sorted(ALERTS)


def test_rules_pass_promtool_check_and_explain_themselves(rendered):
    proc = subprocess.run([PROMTOOL, "check", "rules", str(rendered)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rules = [rule for group in yaml.safe_load(rendered.read_text())["groups"] for rule in group["rules"]]
    assert sorted(rule["alert"] for rule in rules) == sorted(ALERTS)
    for rule in rules:
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        assert "[[" not in rule["annotations"]["description"], rule["alert"]


@pytest.mark.parametrize("alert", ALERTS)
def test_alert_fires_only_when_it_should(rendered, tmp_path, alert):
    series, evals = CASES[alert]
    _promtool_test(tmp_path, rendered, alert, series, evals)


# The thresholds are the role's variables: moved, the same series give the other answer.
@pytest.mark.parametrize(
    ("alert", "overrides", "evals"),
    [
        ("DiskAlmostFull", {"monitoring_disk_used_percent": 95}, [("15m", [])]),
        (
            "DiskAlmostFull",
            {"monitoring_disk_used_percent": 40},
            [
                (
                    "15m",
                    [
                        _alert("node", "a", 9100, "warning", mountpoint="/", fstype="ext4"),
                        _alert("node", "b", 9100, "warning", mountpoint="/", fstype="ext4"),
                    ],
                )
            ],
        ),
        ("MLflowDown", {"monitoring_down_for_seconds": 0}, [("1m", [_alert("mlflow", "a", 5000, "critical")])]),
        ("MLflowDown", {"monitoring_down_for_seconds": 600}, [("5m", [])]),
        ("MLflow5xxRatio", {"monitoring_5xx_ratio": 0.2}, [("20m", [])]),
        ("MLflowLatencyHigh", {"monitoring_latency_seconds": 10.0}, [("20m", [])]),
        ("CertificateExpiring", {"monitoring_certificate_expiry_days": 7}, [("5m", [])]),
        ("BackupStale", {"monitoring_backup_stale_factor": 4}, [("3h", [])]),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_thresholds_follow_the_variables(tmp_path, alert, overrides, evals):
    rules = _render(tmp_path, overrides)
    _promtool_test(tmp_path, rules, alert, CASES[alert][0], evals)
