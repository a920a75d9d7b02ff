"""Backup freshness (issue #20): a successful backup run records itself, the drift report names a stale one.

- mlops.mlflow._systemd's stamp script, run for real with its directories moved to tmp_path:
  the stamp JSON and the node exporter textfile with the exact metric lines, nothing for a job
  without a manifest, and nothing when the job's own command failed (the cron form, `&&`);
- job.yml's freshness tasks, run on localhost (directories moved to tmp_path): check mode says
  what a run would change, a second run changes nothing, a job that loses its freshness loses its
  records;
- reconverge's summarizer with fresh, stale and never-run stamp dirs, and the runner's status;
- calendar_interval against systemd-analyze's own elapses.
"""

from __future__ import annotations

import datetime
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from ansible_collections.mlops.mlflow.plugins.filter.calendar import calendar_interval
from conftest import REPO_ROOT, play_results, run_playbook
from support.role_template import render_role_template, role_vars
from test_role_variable_effects import _ini, _render_job, _systemd_include_vars

STAMP = REPO_ROOT / "roles" / "_systemd" / "files" / "mlops-backup-stamp.py"
SUMMARIZER = REPO_ROOT / "roles" / "reconverge" / "files" / "summarize.py"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _dirs(tmp_path: Path, textfile: bool = True) -> dict[str, str]:
    state, prom = tmp_path / "state", tmp_path / "node-exporter"
    (state / "jobs").mkdir(parents=True, exist_ok=True)
    if textfile:
        prom.mkdir(exist_ok=True)
    return {"MLOPS_BACKUP_STATE_DIR": str(state), "MLOPS_BACKUP_TEXTFILE_DIR": str(prom)}


def _manifest(env: dict[str, str], job: str, interval: int) -> Path:
    path = Path(env["MLOPS_BACKUP_STATE_DIR"]) / "jobs" / f"{job}.json"
    path.write_text(json.dumps({"job": job, "interval_seconds": interval}) + "\n")
    return path


def _stamp(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(STAMP), *args], capture_output=True, text=True, env={**os.environ, **env}, check=False
    )


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------- the stamp script


def test_stamp_writes_the_record_and_the_metrics(tmp_path):
    env = _dirs(tmp_path)
    _manifest(env, "mlops-mlflow-pgbackrest@full", 604800)
    before = int(time.time())
    proc = _stamp(env, "mlops-mlflow-pgbackrest@full")
    after = int(time.time())
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "state" / "stamps" / "mlops-mlflow-pgbackrest@full.json").read_text())
    assert set(record) == {"job", "last_success", "interval_seconds"}
    assert record["job"] == "mlops-mlflow-pgbackrest@full" and record["interval_seconds"] == 604800
    assert before <= record["last_success"] <= after
    prom = (tmp_path / "node-exporter" / "mlops-backup-mlops-mlflow-pgbackrest@full.prom").read_text()
    samples = [line for line in prom.splitlines() if not line.startswith("#")]
    assert samples == [
        f'mlops_backup_last_success_timestamp_seconds{{job="mlops-mlflow-pgbackrest@full"}} {record["last_success"]}',
        'mlops_backup_interval_seconds{job="mlops-mlflow-pgbackrest@full"} 604800',
    ]
    assert "# TYPE mlops_backup_last_success_timestamp_seconds gauge" in prom.splitlines()
    assert "# TYPE mlops_backup_interval_seconds gauge" in prom.splitlines()
    # Atomic writes leave no temporary file behind (the collector reads *.prom only anyway).
    assert _files(tmp_path / "node-exporter") == ["mlops-backup-mlops-mlflow-pgbackrest@full.prom"]
    assert _files(tmp_path / "state") == [
        "jobs/mlops-mlflow-pgbackrest@full.json",
        "stamps/mlops-mlflow-pgbackrest@full.json",
    ]
    assert oct((tmp_path / "state" / "stamps" / "mlops-mlflow-pgbackrest@full.json").stat().st_mode & 0o777) == "0o644"


def test_stamp_without_the_textfile_directory_writes_only_the_record(tmp_path):
    env = _dirs(tmp_path, textfile=False)
    _manifest(env, "mlops-mlflow-pg-backup", 86400)
    assert _stamp(env, "mlops-mlflow-pg-backup").returncode == 0
    assert not (tmp_path / "node-exporter").exists()
    assert _files(tmp_path / "state") == ["jobs/mlops-mlflow-pg-backup.json", "stamps/mlops-mlflow-pg-backup.json"]


def test_stamp_of_a_job_without_freshness_records_nothing(tmp_path):
    env = _dirs(tmp_path)
    proc = _stamp(env, "mlops-mlflow-gc")
    assert proc.returncode == 0
    assert "keeps no freshness" in proc.stderr
    assert _files(tmp_path) == []


@pytest.mark.parametrize("job", ["../etc/passwd", "a b", ""])
def test_stamp_refuses_a_path_for_a_job_name(tmp_path, job):
    env = _dirs(tmp_path)
    proc = _stamp(env, job)
    assert proc.returncode != 0 and "not a job name" in proc.stderr
    assert _files(tmp_path) == []


def test_a_second_success_replaces_the_first(tmp_path):
    env = _dirs(tmp_path)
    _manifest(env, "job", 3600)
    stamp = tmp_path / "state" / "stamps" / "job.json"
    assert _stamp(env, "job").returncode == 0
    stamp.write_text(json.dumps({"job": "job", "last_success": 1, "interval_seconds": 3600}))
    assert _stamp(env, "job").returncode == 0
    assert json.loads(stamp.read_text())["last_success"] > 1
    assert (
        f" {json.loads(stamp.read_text())['last_success']}\n"
        in (tmp_path / "node-exporter" / "mlops-backup-job.prom").read_text()
    )


# ---------------------------------------------------------------- the cron form, run for real

JOB_TASKS = yaml.safe_load((REPO_ROOT / "roles" / "_systemd" / "tasks" / "job.yml").read_text())


def _task(name_start: str) -> dict:
    (task,) = [t for t in JOB_TASKS if t["name"].startswith(name_start)]
    return task


def _job_vars(tmp_path: Path, instances: list[dict], **extra) -> dict:
    return {
        **role_vars("_systemd"),
        "_systemd_job_name": "mlops-test-backup",
        "_systemd_job_description": "A test backup",
        "_systemd_job_exec_start": "/bin/true",
        "_systemd_job_instances": instances,
        "__systemd_job_stamp_script": str(STAMP),
        "__systemd_job_state_dir": str(tmp_path / "state"),
        "__systemd_job_textfile_dir": str(tmp_path / "node-exporter"),
        **extra,
    }


def _cron_jobs(tmp_path: Path, variables: dict) -> list[str]:
    """The cron command of each enabled instance, as job.yml's cron task writes it."""
    cron = _task("Schedule from cron")
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "ansible.builtin.debug": {"msg": cron["ansible.builtin.cron"]["job"]},
                "loop": cron["loop"],
                "loop_control": cron["loop_control"],
            }
        ],
    }
    proc = run_playbook([play], tmp_path, variables=variables)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return [r["msg"] for r in json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["results"]]


def test_cron_stamps_only_after_a_successful_run(tmp_path):
    instances = [
        {
            "name": "ok",
            "enabled": True,
            "on_calendar": "daily",
            "cron_job": "true >/dev/null 2>&1",
            "freshness_seconds": 86400,
        },
        {
            "name": "broken",
            "enabled": True,
            "on_calendar": "daily",
            "cron_job": "false >/dev/null 2>&1",
            "freshness_seconds": 86400,
        },
        {"name": "plain", "enabled": True, "on_calendar": "daily", "cron_job": "true"},
    ]
    ok, broken, plain = _cron_jobs(tmp_path, _job_vars(tmp_path, instances, _systemd_job_manager="cron"))
    assert ok == f"true >/dev/null 2>&1 && /usr/bin/python3 {STAMP} mlops-test-backup@ok"
    assert broken == f"false >/dev/null 2>&1 && /usr/bin/python3 {STAMP} mlops-test-backup@broken"
    assert plain == "true"  # no freshness, no stamp
    env = _dirs(tmp_path)
    for job in ("mlops-test-backup@ok", "mlops-test-backup@broken"):
        _manifest(env, job, 86400)
    for command in (ok, broken):
        subprocess.run(["/bin/sh", "-c", command], env={**os.environ, **env}, check=False)
    assert _files(tmp_path / "state" / "stamps") == ["mlops-test-backup@ok.json"]
    assert _files(tmp_path / "node-exporter") == ["mlops-backup-mlops-test-backup@ok.prom"]


# ---------------------------------------------------------------- job.yml's freshness tasks on localhost

FRESHNESS_TASKS = [
    "Check the freshness of job",
    "Look for the freshness records on this host",
    "List the freshness records on this host",
    "Remember the freshness records on this host",
    "Create the freshness directories of job",
    "Install the backup stamp script",
    "Record the intervals of job",
    "Remove the unwanted freshness records of",
]


def _run_freshness(tmp_path: Path, variables: dict, check: bool = False) -> list[dict]:
    tasks = [dict(_task(name)) for name in FRESHNESS_TASKS]
    copy = tasks[5]["ansible.builtin.copy"] = dict(tasks[5]["ansible.builtin.copy"])
    copy["src"] = str(STAMP)  # a role's files/ is not beside a bare playbook
    play = {"hosts": "localhost", "gather_facts": False, "tasks": tasks}
    proc = run_playbook([play], tmp_path, variables=variables, check=check)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return json.loads(proc.stdout)["plays"][0]["tasks"]


def _changed(tasks: list[dict]) -> list[str]:
    return [t["task"]["name"] for t in tasks if t["hosts"]["localhost"].get("changed")]


def test_freshness_records_check_apply_idempotent_and_removed(tmp_path):
    state = tmp_path / "state"
    variables = _job_vars(
        tmp_path,
        [
            {"name": "full", "enabled": True, "on_calendar": "weekly", "freshness_seconds": "604800"},
            {"name": "diff", "enabled": True, "on_calendar": "daily", "freshness_seconds": 172800},
            {"name": "off", "enabled": False, "on_calendar": "daily", "freshness_seconds": 86400},
            {"name": "none", "enabled": True, "on_calendar": "daily"},
        ],
        __systemd_job_stamp_script=str(tmp_path / "libexec" / "mlops-backup-stamp.py"),
    )
    checked = _run_freshness(tmp_path, variables, check=True)
    assert {name.split(" of job")[0] for name in _changed(checked)} >= {
        "Create the freshness directories",
        "Install the backup stamp script",
        "Record the intervals",
    }
    assert not state.exists() and not (tmp_path / "libexec").exists()

    applied = _run_freshness(tmp_path, variables)
    assert _changed(applied) == _changed(checked)
    assert _files(state) == ["jobs/mlops-test-backup@diff.json", "jobs/mlops-test-backup@full.json"]
    assert json.loads((state / "jobs" / "mlops-test-backup@full.json").read_text()) == {
        "job": "mlops-test-backup@full",
        "interval_seconds": 604800,
    }
    assert (tmp_path / "libexec" / "mlops-backup-stamp.py").read_bytes() == STAMP.read_bytes()
    assert _changed(_run_freshness(tmp_path, variables)) == []
    assert _changed(_run_freshness(tmp_path, variables, check=True)) == []

    # A success of diff, then diff loses its freshness: its manifest, stamp and metrics go.
    env = {"MLOPS_BACKUP_STATE_DIR": str(state), "MLOPS_BACKUP_TEXTFILE_DIR": str(tmp_path / "node-exporter")}
    (tmp_path / "node-exporter").mkdir()
    assert _stamp(env, "mlops-test-backup@diff").returncode == 0
    variables["_systemd_job_instances"][1]["freshness_seconds"] = 0
    checked = _run_freshness(tmp_path, variables, check=True)
    assert [name.startswith("Remove the unwanted freshness records of") for name in _changed(checked)] == [True]
    assert (state / "stamps" / "mlops-test-backup@diff.json").exists()
    _run_freshness(tmp_path, variables)
    assert _files(state) == ["jobs/mlops-test-backup@full.json"]
    assert _files(tmp_path / "node-exporter") == []
    assert _changed(_run_freshness(tmp_path, variables)) == []


def test_plain_job_freshness_and_none(tmp_path):
    state = tmp_path / "state"
    variables = _job_vars(tmp_path, [], _systemd_job_freshness_seconds=86400)
    _run_freshness(tmp_path, variables)
    assert _files(state) == ["jobs/mlops-test-backup.json"]
    variables["_systemd_job_freshness_seconds"] = 0
    _run_freshness(tmp_path, variables)
    assert _files(state) == []


@pytest.mark.parametrize("value", ["a day", -5, "1.5"])
def test_freshness_must_be_whole_seconds(tmp_path, value):
    variables = _job_vars(
        tmp_path, [{"name": "x", "enabled": True, "on_calendar": "daily", "freshness_seconds": value}]
    )
    play = {"hosts": "localhost", "gather_facts": False, "tasks": [_task("Check the freshness of job")]}
    proc = run_playbook([play], tmp_path, variables=variables)
    assert proc.returncode != 0
    assert "mlops-test-backup: freshness_seconds is a whole number of seconds" in proc.stdout


# ---------------------------------------------------------------- reconverge: the drift report


def _summarize(tmp_path: Path, mode: str, state: Path) -> tuple[int, dict, str]:
    run_dir = tmp_path / f"run-{mode}"
    run_dir.mkdir(exist_ok=True)
    (run_dir / "result.json").write_text(json.dumps({"plays": [], "stats": {"localhost": {"ok": 3}}}))
    proc = subprocess.run(
        [sys.executable, str(SUMMARIZER), str(run_dir), mode, "0", "2026-12-02T00:00:00Z"],
        capture_output=True,
        text=True,
        env={**os.environ, "MLOPS_BACKUP_STATE_DIR": str(state), "MLOPS_TEXTFILE_DIR": str(tmp_path / "absent")},
        check=False,
    )
    assert proc.stderr == ""
    return proc.returncode, json.loads((run_dir / "summary.json").read_text()), (run_dir / "summary.txt").read_text()


def _backup(state: Path, job: str, interval: int, installed_ago: int, success_ago: int | None) -> None:
    now = time.time()
    (state / "jobs").mkdir(parents=True, exist_ok=True)
    (state / "stamps").mkdir(exist_ok=True)
    manifest = state / "jobs" / f"{job}.json"
    manifest.write_text(json.dumps({"job": job, "interval_seconds": interval}))
    os.utime(manifest, (now - installed_ago, now - installed_ago))
    if success_ago is not None:
        record = {"job": job, "last_success": int(now - success_ago), "interval_seconds": interval}
        (state / "stamps" / f"{job}.json").write_text(json.dumps(record))


def test_drift_report_passes_with_fresh_backups(tmp_path):
    state = tmp_path / "state"
    _backup(state, "mlops-mlflow-pg-backup", 86400, installed_ago=30 * 86400, success_ago=2 * 86400 - 600)
    # Never succeeded, but installed less than twice its interval ago: still in its grace.
    _backup(state, "mlops-mlflow-pgbackrest@full", 604800, installed_ago=10 * 86400, success_ago=None)
    rc, summary, text = _summarize(tmp_path, "drift-report", state)
    assert rc == 0
    assert summary["stale_backups"] == []
    assert "STALE" not in text
    assert text.startswith("mlops-reconverge drift-report: rc=0, 0 would change, 0 failed\n")


def test_drift_report_fails_naming_stale_backups(tmp_path):
    state = tmp_path / "state"
    _backup(state, "mlops-mlflow-pg-backup", 86400, installed_ago=30 * 86400, success_ago=2 * 86400 + 600)
    _backup(state, "mlops-mlflow-pgbackrest@full", 604800, installed_ago=15 * 86400, success_ago=None)
    _backup(state, "mlops-mlflow-pgbackrest@diff", 172800, installed_ago=30 * 86400, success_ago=3600)
    rc, summary, text = _summarize(tmp_path, "drift-report", state)
    assert rc == 3
    stale = {item["job"]: item for item in summary["stale_backups"]}
    assert set(stale) == {"mlops-mlflow-pg-backup", "mlops-mlflow-pgbackrest@full"}
    assert stale["mlops-mlflow-pgbackrest@full"]["last_success"] is None
    assert stale["mlops-mlflow-pg-backup"]["interval_seconds"] == 86400
    lines = text.splitlines()
    (pg,) = [line for line in lines if "STALE backup mlops-mlflow-pg-backup:" in line]
    assert re.fullmatch(
        r"  STALE backup mlops-mlflow-pg-backup: last success \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(interval 86400 s\)", pg
    )
    (full,) = [line for line in lines if "STALE backup mlops-mlflow-pgbackrest@full:" in line]
    assert "never succeeded since it was installed" in full
    assert "pgbackrest@diff" not in text


def test_a_reinstalled_job_gets_its_grace_again(tmp_path):
    state = tmp_path / "state"
    # The last success is old, but the job was (re)installed an hour ago.
    _backup(state, "job", 86400, installed_ago=3600, success_ago=90 * 86400)
    rc, summary, _ = _summarize(tmp_path, "drift-report", state)
    assert rc == 0 and summary["stale_backups"] == []


def test_an_unreadable_manifest_is_stale(tmp_path):
    state = tmp_path / "state"
    (state / "jobs").mkdir(parents=True)
    (state / "jobs" / "broken.json").write_text("{")
    rc, _, text = _summarize(tmp_path, "drift-report", state)
    assert rc == 3 and "STALE backup broken: unreadable manifest" in text


def test_apply_runs_do_not_judge_backups(tmp_path):
    state = tmp_path / "state"
    _backup(state, "job", 86400, installed_ago=30 * 86400, success_ago=None)
    rc, summary, text = _summarize(tmp_path, "apply", state)
    assert rc == 0 and "stale_backups" not in summary and "STALE" not in text


def test_no_backup_jobs_no_stale_backups(tmp_path):
    rc, summary, _ = _summarize(tmp_path, "drift-report", tmp_path / "absent")
    assert rc == 0 and summary["stale_backups"] == []


def _runner(tmp_path: Path, playbook_rc: int) -> Path:
    """The real runner, with a stand-in ansible-playbook and every directory in tmp_path."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    fake = venv / "bin" / "ansible-playbook"
    fake.write_text(f'#!/bin/sh\necho \'{{"plays": [], "stats": {{}}}}\'\nexit {playbook_rc}\n')
    fake.chmod(0o755)
    for name in ("state", "logs", "home"):
        (tmp_path / name).mkdir(exist_ok=True)
    runner = tmp_path / "mlops-reconverge"
    render_role_template(
        "reconverge",
        "mlops-reconverge.sh.j2",
        runner,
        tmp_path,
        {
            "reconverge_source": "checkout",
            "reconverge_checkout_dir": str(tmp_path),
            "reconverge_log_dir": str(tmp_path / "logs"),
            "_reconverge_state_dir": str(tmp_path / "state"),
            "_reconverge_home": str(tmp_path / "home"),
            "_reconverge_venv": str(venv),
            "_reconverge_lock": str(tmp_path / "lock"),
            "_reconverge_summarizer": str(SUMMARIZER),
        },
    )
    runner.chmod(0o755)
    return runner


@pytest.mark.parametrize(("playbook_rc", "stale", "expected"), [(0, False, 0), (0, True, 3), (2, True, 2)])
def test_runner_fails_a_drift_report_with_a_stale_backup(tmp_path, playbook_rc, stale, expected):
    backups = tmp_path / "backups"
    _backup(backups, "mlops-mlflow-pg-backup", 86400, installed_ago=30 * 86400, success_ago=3 * 86400 if stale else 60)
    runner = _runner(tmp_path, playbook_rc)
    proc = subprocess.run(
        [str(runner), "drift-report"],
        capture_output=True,
        text=True,
        env={**os.environ, "MLOPS_BACKUP_STATE_DIR": str(backups), "MLOPS_TEXTFILE_DIR": str(tmp_path / "absent")},
        check=False,
    )
    assert proc.returncode == expected, proc.stdout + proc.stderr
    assert (tmp_path / "state" / "last-drift-report.rc").read_text().strip() == str(expected)
    # What the unit prints goes to the journal: the stale job by name.
    assert ("STALE backup mlops-mlflow-pg-backup: last success" in proc.stdout) is stale


# ---------------------------------------------------------------- calendar_interval against systemd


def _systemd_elapses(expression: str) -> list[datetime.datetime]:
    base = "2026-12-07 00:00:00 UTC"  # a Monday
    proc = subprocess.run(
        [SYSTEMD_ANALYZE, "calendar", "--iterations=100", f"--base-time={base}", expression],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", proc.stdout)
    return [datetime.datetime.strptime(value, "%Y-%m-%d %H:%M:%S") for value in found]


@pytest.mark.skipif(not SYSTEMD_ANALYZE, reason="no systemd-analyze")
@pytest.mark.parametrize(
    "variable",
    [
        ("postgres", "postgres_pgbackrest_full_on_calendar"),
        ("postgres", "postgres_pgbackrest_diff_on_calendar"),
        ("postgres", "postgres_backup_on_calendar"),
        ("mlflow_server", "mlflow_server_sqlite_backup_on_calendar"),
        (None, "*-*-* 00/6:20:00"),
        (None, "Mon,Fri..Sun *-*-* 01:00"),
        (None, "Mon,Wed *-*-* 01:00:00"),
    ],
)
def test_calendar_interval_matches_systemd(variable):
    role, name = variable
    expression = role_vars(role)[name] if role else name
    elapses = _systemd_elapses(expression + " UTC")
    two_weeks = [t for t in elapses if t < elapses[0] + datetime.timedelta(days=14)]
    longest = max((b - a).total_seconds() for a, b in itertools.pairwise(two_weeks))
    assert calendar_interval(expression) == longest


# ---------------------------------------------------------------- the units the callers hand to _systemd


def test_pgbackrest_units_stamp_each_instance_with_its_interval(tmp_path):
    variables = {"postgres_pgbackrest_enabled": True}
    _, service = _render_job("postgres", "pgbackrest_schedule.yml", tmp_path, variables)
    stamp = "+/usr/bin/python3 /usr/local/libexec/mlops-backup-stamp.py mlops-mlflow-pgbackrest@%i"
    assert _ini(service)["Service"]["ExecStartPost"] == stamp
    # The intervals the manifests get: a week for full, Saturday to Monday for diff.
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {"ansible.builtin.debug": {"msg": "{{ __systemd_job_fresh | items2dict('name', 'freshness_seconds') }}"}}
        ],
    }
    job = {
        **role_vars("_systemd"),
        **role_vars("postgres"),
        **_systemd_include_vars("postgres", "pgbackrest_schedule.yml"),
    }
    proc = run_playbook([play], tmp_path, variables={**job, **variables})
    assert proc.returncode == 0, proc.stdout[-3000:]
    fresh = play_results(json.loads(proc.stdout)["plays"][0])[-1]["msg"]
    assert {name: int(seconds) for name, seconds in fresh.items()} == {"full": 604800, "diff": 172800}


def test_a_template_unit_without_freshness_has_no_stamp(tmp_path):
    instances = [
        {"name": "full", "enabled": True, "on_calendar": "weekly"},
        {"name": "diff", "enabled": True, "on_calendar": "daily"},
    ]
    _, service = _render_job("postgres", "pgbackrest_schedule.yml", tmp_path, {"_systemd_job_instances": instances})
    assert "ExecStartPost" not in _ini(service)["Service"]
