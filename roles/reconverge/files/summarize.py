"""Summarise one ansible-playbook JSON result (the json stdout callback).

    summarize.py RUN_DIR MODE RC STARTED

Writes RUN_DIR/summary.json (machine-readable: hosts and their stats, changed
task names, failures) and RUN_DIR/summary.txt (for people). Task results are
never copied, so nothing a task printed can leak into the summary.

A drift report also names the stale backups of this host: each backup job that
mlops.mlflow._systemd installed with a freshness (a manifest in
/var/lib/mlops-backup/jobs, or $MLOPS_BACKUP_STATE_DIR/jobs) whose last success
(stamps/<job>.json) is older than twice its interval, or that never succeeded
within twice its interval of being installed (the manifest's mtime). It then
exits 3, which the runner makes the run's status when ansible-playbook's was 0.

When node exporter's textfile collector directory exists (/var/lib/prometheus/node-exporter,
or $MLOPS_TEXTFILE_DIR), every run also rewrites mlops_reconverge.prom there (atomically):
mlops_reconverge_last_run_timestamp_seconds (when the run finished),
mlops_reconverge_last_run_success (1 when ansible-playbook exited 0 with a JSON result, else 0;
stale backups have metrics and an alert of their own) and mlops_reconverge_drift_changed_tasks
(the changed task results of the last drift report, kept across apply runs).
"""

import datetime
import glob
import json
import os
import sys
import time

BACKUP_STATE_DIR = os.environ.get("MLOPS_BACKUP_STATE_DIR", "/var/lib/mlops-backup")
STALE_BACKUPS_STATUS = 3
TEXTFILE_DIR = os.environ.get("MLOPS_TEXTFILE_DIR", "/var/lib/prometheus/node-exporter")
METRICS_FILE = "mlops_reconverge.prom"
_METRICS_HELP = {
    "mlops_reconverge_last_run_timestamp_seconds": "When the last mlops-reconverge run finished (Unix seconds).",
    "mlops_reconverge_last_run_success": "1 when the last mlops-reconverge run's ansible-playbook succeeded, else 0.",
    "mlops_reconverge_drift_changed_tasks": "Changed task results of the last mlops-reconverge drift report.",
}


def summarise(report, mode, rc, started):
    changed, failed = [], []
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            name = task.get("task", {}).get("name", "?")
            for host, result in task.get("hosts", {}).items():
                if result.get("failed") or result.get("unreachable"):
                    message = result.get("msg", "")
                    failed.append({"host": host, "task": name, "msg": str(message)[:500]})
                elif result.get("changed"):
                    changed.append({"host": host, "task": name})
    return {
        "mode": mode,
        "rc": rc,
        "started": started,
        "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hosts": report.get("stats", {}),
        "changed": changed,
        "failed": failed,
    }


def stale_backups(state_dir, now):
    """The backup jobs of state_dir whose last success (or install) is older than twice their interval."""
    stale = []
    for path in sorted(glob.glob(os.path.join(state_dir, "jobs", "*.json"))):
        job = os.path.basename(path)[: -len(".json")]
        try:
            with open(path) as handle:
                interval = int(json.load(handle)["interval_seconds"])
            installed = int(os.stat(path).st_mtime)
        except (OSError, ValueError, KeyError, TypeError):
            stale.append({"job": job, "last_success": None, "interval_seconds": None, "msg": "unreadable manifest"})
            continue
        try:
            with open(os.path.join(state_dir, "stamps", job + ".json")) as handle:
                last_success = int(json.load(handle)["last_success"])
        except (OSError, ValueError, KeyError, TypeError):
            last_success = None  # never succeeded (or a stamp nobody can read: no proof of success)
        if now - max(last_success or 0, installed) > 2 * interval:
            if last_success is None:
                message = "never succeeded since it was installed %s" % _utc(installed)
            else:
                message = "last success %s" % _utc(last_success)
            stale.append({"job": job, "last_success": last_success, "interval_seconds": interval, "msg": message})
    return stale


def previous_metrics(path):
    """The samples of an earlier metrics file: {name: value} (none when missing or unreadable)."""
    values = {}
    try:
        with open(path) as handle:
            for line in handle:
                parts = line.split()
                if len(parts) == 2 and parts[0] in _METRICS_HELP:
                    values[parts[0]] = float(parts[1])
    except (OSError, ValueError):
        return {}
    return values


def metrics_text(summary, now, previous):
    """The textfile collector's view of this run; the drift count carries over an apply run."""
    drift = previous.get("mlops_reconverge_drift_changed_tasks")
    if summary["mode"] == "drift-report":
        drift = len(summary["changed"])
    samples = {
        "mlops_reconverge_last_run_timestamp_seconds": int(now),
        "mlops_reconverge_last_run_success": 1 if summary["rc"] == 0 and not summary["failed"] else 0,
    }
    if drift is not None:
        samples["mlops_reconverge_drift_changed_tasks"] = int(drift)
    lines = []
    for name, value in samples.items():
        lines += ["# HELP %s %s" % (name, _METRICS_HELP[name]), "# TYPE %s gauge" % name, "%s %d" % (name, value)]
    return "\n".join(lines) + "\n"


def write_metrics(textfile_dir, summary, now):
    """Rewrite textfile_dir/mlops_reconverge.prom atomically; nothing when the directory is missing."""
    if not os.path.isdir(textfile_dir):
        return None
    path = os.path.join(textfile_dir, METRICS_FILE)
    text = metrics_text(summary, now, previous_metrics(path))
    partial = "%s.%d.tmp" % (path, os.getpid())  # not *.prom: the collector never reads it half-written
    with open(partial, "w") as handle:
        handle.write(text)
    os.chmod(partial, 0o644)
    os.replace(partial, path)
    return path


def _utc(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_text(summary):
    verb = "would change" if summary["mode"] == "drift-report" else "changed"
    lines = [
        "mlops-reconverge %s: rc=%s, %d %s, %d failed"
        % (summary["mode"], summary["rc"], len(summary["changed"]), verb, len(summary["failed"]))
    ]
    lines += ["  %s %s: %s" % (verb, item["host"], item["task"]) for item in summary["changed"]]
    lines += ["  FAILED %s: %s: %s" % (item["host"], item["task"], item["msg"]) for item in summary["failed"]]
    lines += [
        "  STALE backup %s: %s (interval %s s)" % (item["job"], item["msg"], item["interval_seconds"])
        for item in summary.get("stale_backups", [])
    ]
    return "\n".join(lines) + "\n"


def main():
    run_dir, mode, rc, started = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    try:
        with open(os.path.join(run_dir, "result.json")) as handle:
            report = json.load(handle)
    except (OSError, ValueError):
        report = {}
    summary = summarise(report, mode, rc, started)
    if not report:
        summary["failed"].append({"host": "-", "task": "ansible-playbook", "msg": "no JSON result; see stderr.log"})
    if mode == "drift-report":
        summary["stale_backups"] = stale_backups(BACKUP_STATE_DIR, time.time())
    with open(os.path.join(run_dir, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)
    with open(os.path.join(run_dir, "summary.txt"), "w") as handle:
        handle.write(as_text(summary))
    try:
        write_metrics(TEXTFILE_DIR, summary, time.time())
    except OSError as exc:  # the run's own record above stands; monitors see the metrics go stale
        sys.stderr.write("mlops-reconverge: metrics not written to %s: %s\n" % (TEXTFILE_DIR, exc))
    return STALE_BACKUPS_STATUS if summary.get("stale_backups") else 0


if __name__ == "__main__":
    sys.exit(main())
