"""Scheduled reconvergence: a run converges, drift is reported exactly, repaired, and runs never overlap."""

import json
import shlex
import time

import pytest

SITE = "/etc/nginx/sites-available/mlflow.conf"
ENV_FILE = "/etc/mlflow/mlflow-server.env"


UNITS = "mlops-reconverge@apply.service mlops-reconverge@drift-report.service"


def _idle(host, timeout: float = 900) -> None:
    """Wait until no reconverge run is in flight (the hourly drift-report timer may fire mid-test)."""
    deadline = time.monotonic() + timeout
    while set(host.run(f"systemctl is-active {UNITS}").stdout.split()) & {"active", "activating", "deactivating"}:
        assert time.monotonic() < deadline, "a scheduled reconverge run did not end"
        time.sleep(2)


def run(host, mode):
    """One run of the service, as the timer starts it; again when a scheduled run held the lock (75)."""
    for _attempt in range(3):
        _idle(host)
        result = host.run(f"systemctl start mlops-reconverge@{mode}.service")
        if host.file(f"/var/lib/mlops-reconverge/last-{mode}.rc").content_string.strip() != "75":
            break
    summary = json.loads(host.file(f"/var/lib/mlops-reconverge/last-{mode}/summary.json").content_string)
    return result, summary


def changed_tasks(summary):
    return {item["task"].split(" : ", 1)[-1] for item in summary["changed"]}


def test_timers_scheduled(host):
    for mode in ("apply", "drift-report"):
        timer = host.service(f"mlops-reconverge-{mode}.timer")
        assert timer.is_enabled and timer.is_running
    listing = host.check_output("systemctl list-timers --all --no-legend mlops-reconverge-*")
    assert "mlops-reconverge-apply.timer" in listing


@pytest.fixture(scope="module")
def converged(host):
    first, summary = run(host, "apply")
    assert first.rc == 0, summary["failed"]
    assert summary["rc"] == 0 and summary["changed"], "the first run should converge the stack"
    return summary


def test_second_run_reports_no_change(host, converged):
    result, summary = run(host, "apply")
    assert result.rc == 0
    assert summary["rc"] == 0 and summary["changed"] == [] and summary["failed"] == []
    assert host.file("/var/lib/mlops-reconverge/last-apply.rc").content_string.strip() == "0"
    assert "0 changed, 0 failed" in host.file("/var/lib/mlops-reconverge/last-apply/summary.txt").content_string


def test_drift_is_reported_exactly_then_repaired(host, converged):
    host.check_output(f"echo '# hand edit' >> {SITE}")
    host.check_output("systemctl stop mlflow-server")
    host.check_output(f"chmod 0644 {ENV_FILE}")

    _, report = run(host, "drift-report")
    assert report["mode"] == "drift-report" and report["failed"] == []
    assert changed_tasks(report) >= {
        "Write the MLflow site (validated with nginx -t)",
        "Write the mlflow server environment file (secrets)",
        "Start and enable the mlflow server",
    }
    handlers = {"Reload nginx", "Restart mlflow server (systemd)", "Reload systemd for mlflow server"}
    # Check mode runs no handler, so nginx_proxy's catch-up also finds the hand-edited site newer
    # than nginx's last reload: the same repair, named twice.
    handlers.add("Reload on the files on disk nginx")
    assert (
        changed_tasks(report)
        <= {
            "Write the MLflow site (validated with nginx -t)",
            "Write the mlflow server environment file (secrets)",
            "Start and enable the mlflow server",
        }
        | handlers
    ), report["changed"]
    # A drift report changes nothing.
    assert "# hand edit" in host.file(SITE).content_string
    assert not host.service("mlflow-server").is_running
    assert host.file(ENV_FILE).mode == 0o644

    _, repaired = run(host, "apply")
    assert repaired["rc"] == 0 and repaired["changed"]
    assert "# hand edit" not in host.file(SITE).content_string
    assert host.service("mlflow-server").is_running
    assert host.file(ENV_FILE).mode == 0o640

    _, clean = run(host, "apply")
    assert clean["changed"] == []


def test_logs_hold_no_secret(host, converged):
    found = host.run("grep -rl reconverge-alice-01 /var/log/mlops-reconverge /var/lib/mlops-reconverge")
    assert found.stdout.strip() == ""
    assert host.file("/var/log/mlops-reconverge").mode == 0o750


def test_a_second_run_waits_for_none(host, converged):
    host.check_output("flock /run/lock/mlops-reconverge.lock sleep 20 >/dev/null 2>&1 &")
    result = host.run("/usr/local/sbin/mlops-reconverge apply")
    assert result.rc == 75
    assert "another run holds" in result.stderr
    assert host.file("/var/lib/mlops-reconverge/last-apply.rc").content_string.strip() == "75"


def test_the_scheduled_run_uses_the_users_inventory_and_vault(host, converged):
    # The inventory the role wrote holds no secret; the vault beside it is encrypted; the run that
    # converged the stack read mlops_users from it (nginx lets alice in, nobody without a password).
    assert "password" not in host.file("/etc/mlops-reconverge/inventory.yml").content_string
    assert host.file("/etc/mlops-reconverge/group_vars/all/vault.yml").content_string.startswith("$ANSIBLE_VAULT;")
    probe = (
        'python3 -c "import base64,ssl,sys,urllib.request as u,urllib.error as e; c=ssl._create_unverified_context(); '
        "h={'Authorization': 'Basic ' + base64.b64encode(sys.argv[1].encode()).decode()} if sys.argv[1] else {}; "
        "r=u.Request('https://localhost/api/2.0/mlflow/experiments/search?max_results=1', headers=h)\n"
        'try: print(u.urlopen(r, context=c, timeout=30).status)\nexcept e.HTTPError as x: print(x.code)" '
    )
    assert host.check_output(probe + "alice:reconverge-alice-01").strip() == "200"
    assert host.check_output(probe + "''").strip() == "401"


# -- turning a mode off, or switching manager, removes what the old schedule left ---------
# Last in this file: it re-applies the role on the host (its own Ansible and installed
# collection) and puts the scenario's schedule back at the end.

ROLE_RUN = (
    "cd /opt/mlops-reconverge && ANSIBLE_COLLECTIONS_PATH=/opt/mlops-reconverge/collections "
    "ANSIBLE_LOCAL_TEMP=/opt/mlops-reconverge/tmp /opt/mlops-reconverge/venv/bin/ansible-playbook "
    "-i localhost, -c local /root/reconverge-role.yml -e @/root/reconverge-role-vars.json"
)


def converge_role(host, **variables):
    play = [{"hosts": "localhost", "gather_facts": False, "roles": [{"role": "mlops.mlflow.reconverge"}]}]
    base = {
        "ansible_python_interpreter": "/usr/bin/python3",
        "reconverge_collection_tarball": "/opt/mlops-reconverge/mlops-mlflow.tar.gz",
        "reconverge_vault_password_file": "/etc/mlops-reconverge/vault-pass",
    }
    host.check_output(f"echo {shlex.quote(json.dumps(play))} > /root/reconverge-role.yml")
    host.check_output(f"echo {shlex.quote(json.dumps(base | variables))} > /root/reconverge-role-vars.json")
    result = host.run(ROLE_RUN)
    assert result.rc == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return result


def cron_entries(host):
    listing = host.run("crontab -l -u root")
    return [line for line in listing.stdout.splitlines() if "/usr/local/sbin/mlops-reconverge" in line]


def timer_gone(host, mode):
    """No unit file, not enabled (no timers.target link), not active."""
    unit = f"mlops-reconverge-{mode}.timer"
    return (
        not host.file(f"/etc/systemd/system/{unit}").exists
        and not host.file(f"/etc/systemd/system/timers.target.wants/{unit}").exists
        and host.run(f"systemctl is-active {unit}").stdout.strip() != "active"
    )


def test_turned_off_or_switched_schedules_are_removed(host, converged):
    try:
        converge_role(host, reconverge_drift_report_enabled=False)
        assert timer_gone(host, "drift-report")
        apply = host.service("mlops-reconverge-apply.timer")
        assert apply.is_enabled and apply.is_running
        assert host.file("/etc/systemd/system/mlops-reconverge@.service").exists

        converge_role(host, reconverge_service_manager="cron")
        assert timer_gone(host, "apply") and timer_gone(host, "drift-report")
        assert not host.file("/etc/systemd/system/mlops-reconverge@.service").exists
        assert sorted(e.split()[2] for e in cron_entries(host)) == ["apply", "drift-report"]

        converge_role(host, reconverge_service_manager="cron", reconverge_apply_enabled=False)
        assert [e.split()[2] for e in cron_entries(host)] == ["drift-report"]
    finally:
        converge_role(host)
    assert cron_entries(host) == []
    for mode in ("apply", "drift-report"):
        timer = host.service(f"mlops-reconverge-{mode}.timer")
        assert timer.is_enabled and timer.is_running
