"""Role variables that only shape a rendered file, each set to a non-default value and checked in
what the role writes with it (the real templates, with the role's defaults and vars):

- mlflow_server's unit (user, group, install and config dirs, memory and restart limits, host
  allowlist, --no-serve-artifacts), env file (store URI parts, job execution) and auth config
  (read back by mlflow's own reader);
- the timers and services the postgres, mlflow_server and reconverge roles hand to
  mlops.mlflow._systemd (calendars checked by systemd-analyze when it is there);
- reconverge's runner script (bash -n, and each value where it is used).
"""

from __future__ import annotations

import configparser
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, play_results, run_playbook
from support.role_template import render_role_template, role_vars

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(text)
    return parser


def _env_file(path: Path) -> dict[str, str]:
    """The env file read back the way the start script reads it (/bin/sh, set -a)."""
    out = subprocess.run(
        [
            "/bin/sh",
            "-c",
            'set -a; . "$0"; set +a; exec "$1" -c "$2"',
            str(path),
            sys.executable,
            "import json, os; print(json.dumps(dict(os.environ)))",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )
    return json.loads(out.stdout)


def _calendar_ok(expression: str) -> None:
    if SYSTEMD_ANALYZE:
        proc = subprocess.run([SYSTEMD_ANALYZE, "calendar", expression], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- mlflow_server


def test_mlflow_server_unit_takes_the_account_dirs_and_limits(tmp_path):
    overrides = {
        "mlflow_server_user": "mlsvc",
        "mlflow_server_group": "mlgrp",
        "mlflow_server_install_dir": "/srv/mlflow-opt",
        "mlflow_server_config_dir": "/srv/mlflow-etc",
        "mlflow_server_memory_max": "3G",
        "mlflow_server_restart_sec": 17,
        "mlflow_server_serve_artifacts": False,
        "mlflow_server_allowed_hosts": ["mlflow.example.org", "10.0.0.5:5000"],
    }
    text = render_role_template(
        "mlflow_server", "mlflow-server.service.j2", tmp_path / "mlflow-server.service", tmp_path, overrides
    )
    service = _ini(text)["Service"]
    assert service["User"] == "mlsvc"
    assert service["Group"] == "mlgrp"
    assert service["EnvironmentFile"] == "/srv/mlflow-etc/mlflow-server.env"
    assert service["MemoryMax"] == "3G"
    assert service["RestartSec"] == "17"
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/srv/mlflow-opt/venv/bin/mlflow"
    assert "--no-serve-artifacts" in argv and "--serve-artifacts" not in argv
    assert argv[argv.index("--allowed-hosts") + 1] == "mlflow.example.org,10.0.0.5:5000"

    defaults = _ini(render_role_template("mlflow_server", "mlflow-server.service.j2", tmp_path / "d.service", tmp_path))
    default_argv = shlex.split(defaults["Service"]["ExecStart"])
    assert "--serve-artifacts" in default_argv
    assert default_argv[default_argv.index("--allowed-hosts") + 1].startswith("localhost,localhost:*,127.0.0.1,")
    assert defaults["Service"]["User"] == "mlflow" and defaults["Service"]["MemoryMax"] == "2G"


def test_mlflow_server_env_file_takes_db_name_port_and_job_execution(tmp_path):
    overrides = {
        "mlflow_server_backend": "postgresql",
        "mlflow_server_db_password": "pw-secret",
        "mlflow_server_db_name": "tracking_db",
        "mlflow_server_db_port": 6543,
        "mlflow_server_enable_job_execution": True,
    }
    render_role_template("mlflow_server", "mlflow-server.env.j2", tmp_path / "env", tmp_path, overrides)
    environ = _env_file(tmp_path / "env")
    from sqlalchemy.engine import make_url

    url = make_url(environ["MLFLOW_BACKEND_STORE_URI"])
    assert (url.host, url.port, url.database, url.password) == ("127.0.0.1", 6543, "tracking_db", "pw-secret")
    assert environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"
    # mlflow reads the flag as a boolean from exactly this variable.
    from mlflow.environment_variables import MLFLOW_SERVER_ENABLE_JOB_EXECUTION

    saved = os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION")
    os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]
    try:
        assert MLFLOW_SERVER_ENABLE_JOB_EXECUTION.get() is True
    finally:
        if saved is None:
            del os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]
        else:
            os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = saved

    defaults = {"mlflow_server_backend": "postgresql", "mlflow_server_db_password": "pw-secret"}
    render_role_template("mlflow_server", "mlflow-server.env.j2", tmp_path / "env0", tmp_path, defaults)
    off = _env_file(tmp_path / "env0")
    assert off["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    url = make_url(off["MLFLOW_BACKEND_STORE_URI"])
    assert (url.port, url.database) == (5432, "mlflow")


def test_mlflow_server_auth_config_read_by_mlflow(tmp_path, monkeypatch):
    overrides = {
        "mlflow_server_auth_enabled": True,
        "mlflow_server_auth_admin_username": "root-admin",
        "mlflow_server_auth_admin_password": "a-long-admin-password",
        "mlflow_server_auth_cache_ttl_seconds": 45,
        "mlflow_server_auth_database_uri": "sqlite:////srv/auth/users%2Ddb.sqlite",
    }
    config = tmp_path / "basic_auth.ini"
    render_role_template("mlflow_server", "basic_auth.ini.j2", config, tmp_path, overrides)
    from mlflow.server.auth.config import read_auth_config

    for name in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(config))
    auth = read_auth_config()
    assert auth.admin_username == "root-admin"
    assert auth.auth_cache_ttl_seconds == 45
    assert auth.database_uri == "sqlite:////srv/auth/users%2Ddb.sqlite"

    render_role_template("mlflow_server", "basic_auth.ini.j2", config, tmp_path, {"mlflow_server_auth_enabled": True})
    auth = read_auth_config()
    assert auth.admin_username == "admin"
    assert auth.auth_cache_ttl_seconds == 0
    assert auth.database_uri == "sqlite:////var/lib/mlflow/basic_auth.db"


# ---------------------------------------------------------------- _systemd jobs of the roles


def _systemd_include_vars(role: str, tasks_file: str) -> dict:
    """The `vars:` a role passes to mlops.mlflow._systemd's job entry point in tasks_file."""
    tasks = yaml.safe_load((REPO_ROOT / "roles" / role / "tasks" / tasks_file).read_text())
    (task,) = [
        t
        for t in tasks
        if (t.get("ansible.builtin.include_role") or {}).get("name") == "mlops.mlflow._systemd"
        and t["ansible.builtin.include_role"].get("tasks_from") == "job"
    ]
    return task["vars"]


def _render_job(role: str, tasks_file: str, tmp_path: Path, overrides: dict) -> tuple[list[str], list[str]]:
    """(timers, service) the caller's job writes: one rendered timer per enabled instance."""
    variables = {**role_vars("_systemd"), **role_vars(role), **_systemd_include_vars(role, tasks_file), **overrides}
    templates = REPO_ROOT / "roles" / "_systemd" / "templates"
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Render the timers",
                "ansible.builtin.debug": {
                    "msg": f"{{{{ lookup('ansible.builtin.template', '{templates}/job.timer.j2') }}}}"
                },
                "loop": "{{ __systemd_job_instance_list | selectattr('enabled') | list }}",
                "loop_control": {"loop_var": "__systemd_job_instance"},
            },
            {
                "ansible.builtin.debug": {
                    "msg": f"{{{{ lookup('ansible.builtin.template', '{templates}/job.service.j2') }}}}"
                }
            },
        ],
    }
    proc = run_playbook([play], tmp_path, variables=variables)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    timers = [r["msg"] for r in tasks[0]["hosts"]["localhost"]["results"]]
    return timers, tasks[1]["hosts"]["localhost"]["msg"]


def test_postgres_backup_timer_and_dir(tmp_path):
    calendar = "Mon..Fri *-*-* 01:05:00"
    timers, service = _render_job(
        "postgres",
        "backup.yml",
        tmp_path,
        {
            "postgres_backup_enabled": True,
            "postgres_backup_on_calendar": calendar,
            "postgres_backup_dir": "/srv/pg-dumps",
        },
    )
    (timer,) = timers
    assert _ini(timer)["Timer"]["OnCalendar"] == calendar
    _calendar_ok(calendar)
    assert _ini(service)["Service"]["ReadWritePaths"] == "/srv/pg-dumps"
    # A successful dump records itself (backup freshness, issue #20).
    stamp = "+/usr/bin/python3 /usr/local/libexec/mlops-backup-stamp.py mlops-mlflow-pg-backup"
    assert _ini(service)["Service"]["ExecStartPost"] == stamp
    script = render_role_template(
        "postgres", "pg-backup.sh.j2", tmp_path / "pg-backup.sh", tmp_path, {"postgres_backup_dir": "/srv/pg-dumps"}
    )
    assert "dir='/srv/pg-dumps'\n" in script
    subprocess.run(["sh", "-n", str(tmp_path / "pg-backup.sh")], check=True)


def test_mlflow_server_sqlite_backup_timer(tmp_path):
    calendar = "*-*-* 00/6:20:00"
    (timer,), service = _render_job(
        "mlflow_server",
        "sqlite_backup.yml",
        tmp_path,
        {"mlflow_server_sqlite_backup_enabled": True, "mlflow_server_sqlite_backup_on_calendar": calendar},
    )
    assert _ini(timer)["Timer"]["OnCalendar"] == calendar
    stamp = "+/usr/bin/python3 /usr/local/libexec/mlops-backup-stamp.py mlflow-sqlite-backup"
    assert _ini(service)["Service"]["ExecStartPost"] == stamp
    _calendar_ok(calendar)


def test_reconverge_timers(tmp_path):
    overrides = {
        "reconverge_apply_on_calendar": "Sun *-*-* 02:10:00",
        "reconverge_drift_report_on_calendar": "*-*-* *:07:00",
        "reconverge_randomized_delay": "7min",
    }
    timers, service = _render_job("reconverge", "schedule.yml", tmp_path, overrides)
    # Not a backup: no freshness, no stamp.
    assert "ExecStartPost" not in _ini(service)["Service"]
    by_unit = {_ini(t)["Timer"]["Unit"]: _ini(t)["Timer"] for t in timers}
    assert by_unit["mlops-reconverge@apply.service"]["OnCalendar"] == "Sun *-*-* 02:10:00"
    assert by_unit["mlops-reconverge@drift-report.service"]["OnCalendar"] == "*-*-* *:07:00"
    for timer in by_unit.values():
        assert timer["RandomizedDelaySec"] == "7min"
        _calendar_ok(timer["OnCalendar"])
    if SYSTEMD_ANALYZE:
        proc = subprocess.run([SYSTEMD_ANALYZE, "timespan", "7min"], capture_output=True, text=True)
        assert proc.returncode == 0 and "μs: 420000000" in proc.stdout, proc.stdout


# ---------------------------------------------------------------- reconverge runner and install


def _runner(tmp_path: Path, overrides: dict) -> str:
    path = tmp_path / "mlops-reconverge"
    text = render_role_template("reconverge", "mlops-reconverge.sh.j2", path, tmp_path, overrides)
    subprocess.run(["bash", "-n", str(path)], check=True)
    return text


def test_reconverge_runner_checkout(tmp_path):
    text = _runner(
        tmp_path,
        {
            "reconverge_source": "checkout",
            "reconverge_checkout_dir": "/srv/mlops checkout",
            "reconverge_inventory": "/srv/inv/hosts.yml",
            "reconverge_log_dir": "/srv/reconverge-logs",
            "reconverge_playbook": "playbooks/site.yml",
        },
    )
    assert "\ncd '/srv/mlops checkout'\n" in text
    assert "args=(-i /srv/inv/hosts.yml)" in text
    assert "\nlog_dir=/srv/reconverge-logs\n" in text
    assert '"${args[@]}" playbooks/site.yml >' in text


def test_reconverge_runner_pull_branch(tmp_path):
    text = _runner(
        tmp_path,
        {
            "reconverge_source": "pull",
            "reconverge_git_url": "https://git.example.org/ops/mlops.git",
            "reconverge_git_branch": "release/2026",
        },
    )
    assert "-U https://git.example.org/ops/mlops.git -C release/2026 " in text


def test_reconverge_installs_the_ansible_version(tmp_path):
    tasks = yaml.safe_load((REPO_ROOT / "roles" / "reconverge" / "tasks" / "install.yml").read_text())
    (pip,) = [t for t in tasks if "ansible.builtin.pip" in t]
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.debug": {"msg": pip["ansible.builtin.pip"]["name"]}}],
    }
    proc = run_playbook([play], tmp_path, variables={**role_vars("reconverge"), "reconverge_ansible_version": "11.4.0"})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert play_results(json.loads(proc.stdout)["plays"][0])[-1]["msg"] == "ansible==11.4.0"


@pytest.mark.skipif(not SYSTEMD_ANALYZE, reason="no systemd-analyze")
def test_default_calendars_parse():
    for role, name in (
        ("postgres", "postgres_backup_on_calendar"),
        ("mlflow_server", "mlflow_server_sqlite_backup_on_calendar"),
        ("reconverge", "reconverge_apply_on_calendar"),
        ("reconverge", "reconverge_drift_report_on_calendar"),
    ):
        _calendar_ok(role_vars(role)[name])


# ---------------------------------------------------------------- mlflow_server preflight and image


def _after_preflight(variables: dict, tmp_path: Path, *messages: str):
    """Run mlflow_server's preflight, then print each message (templated); the report's results."""
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.import_role": {"name": "mlops.mlflow.mlflow_server", "tasks_from": "preflight"}}]
        + [{"ansible.builtin.debug": {"msg": msg}} for msg in messages],
    }
    variables = {"role_path": str(REPO_ROOT / "roles" / "mlflow_server"), **variables}
    # A lookup outside the role finds the role's templates (Dockerfile.j2) beside the playbook.
    if not (tmp_path / "templates").exists():
        (tmp_path / "templates").symlink_to(REPO_ROOT / "roles" / "mlflow_server" / "templates")
    proc = run_playbook([play], tmp_path, variables=variables, check=True)
    results = play_results(json.loads(proc.stdout)["plays"][0]) if proc.stdout.startswith("{") else []
    return proc, results


CONTAINER_UNIT = (
    "{{ lookup('ansible.builtin.template', '"
    + str(REPO_ROOT / "roles" / "mlflow_server" / "templates" / "mlflow-server-container.service.j2")
    + "') }}"
)


def test_extra_pip_packages_join_the_venv_and_its_stamp(tmp_path):
    messages = ("{{ _mlflow_server_pip_packages }}", "{{ _mlflow_server_venv_stamp }}")
    proc, extra = _after_preflight({"mlflow_server_extra_pip_packages": ["boto3", "Flask-WTF"]}, tmp_path, *messages)
    assert proc.returncode == 0, proc.stdout[-3000:]
    proc, default = _after_preflight({}, tmp_path, *messages)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert extra[-2]["msg"] == default[-2]["msg"] + ["boto3", "Flask-WTF"]
    # A new package list is a new venv stamp: the venv is rebuilt with it.
    assert extra[-1]["msg"] != default[-1]["msg"]


def test_container_unit_runs_the_pulled_image(tmp_path):
    base = {"mlflow_server_install_mode": "container", "__mlflow_server_ids": {"uid": 999, "gid": 999}}
    image = "ghcr.io/mlflow/mlflow:v3.17.2"
    proc, pulled = _after_preflight(
        {**base, "mlflow_server_container_image_source": "pull", "mlflow_server_container_image": image},
        tmp_path,
        CONTAINER_UNIT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    exec_start = _ini(pulled[-1]["msg"])["Service"]["ExecStart"]
    assert f" {image} " in exec_start and "localhost/mlops-mlflow:" not in exec_start
    proc, built = _after_preflight(base, tmp_path, CONTAINER_UNIT)
    assert proc.returncode == 0, proc.stdout[-3000:]
    exec_start = _ini(built[-1]["msg"])["Service"]["ExecStart"]
    assert " localhost/mlops-mlflow:3.17.2-" in exec_start and image not in exec_start


@pytest.mark.parametrize("image", ["", "ghcr.io/mlflow/mlflow", "ghcr.io/mlflow/mlflow:latest"])
def test_preflight_refuses_an_unpinned_pulled_image(tmp_path, image):
    variables = {
        "mlflow_server_install_mode": "container",
        "mlflow_server_container_image_source": "pull",
        "mlflow_server_container_image": image,
    }
    proc, _ = _after_preflight(variables, tmp_path)
    assert proc.returncode != 0
    assert "mlflow_server_container_image must be an image pinned by tag or digest" in proc.stdout
