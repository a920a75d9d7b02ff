"""Record the success of a backup job (run by its unit's ExecStartPost=, or after `&&` in cron).

    python3 mlops-backup-stamp.py JOB

JOB is the job's unit name without ".service" (NAME, or NAME@INSTANCE for a template unit).
Its interval comes from the jobs manifest the mlops.mlflow._systemd role writes at converge,
STATE/jobs/JOB.json ({"job": ..., "interval_seconds": ...}); a job without one keeps no
freshness and nothing is written. Otherwise writes, each atomically (temporary file, rename):

- STATE/stamps/JOB.json: {"job", "last_success" (epoch seconds), "interval_seconds"};
- when the node exporter's textfile directory exists, TEXTFILE/mlops-backup-JOB.prom with
  mlops_backup_last_success_timestamp_seconds{job="JOB"} and mlops_backup_interval_seconds{job="JOB"}.

STATE is /var/lib/mlops-backup and TEXTFILE /var/lib/prometheus/node-exporter, unless
MLOPS_BACKUP_STATE_DIR or MLOPS_BACKUP_TEXTFILE_DIR say otherwise (tests).
systemd runs ExecStartPost= only after ExecStart= succeeded, cron's `&&` only after a zero
exit: a failed run records nothing.
"""

import json
import os
import re
import sys
import tempfile
import time

STATE_DIR = os.environ.get("MLOPS_BACKUP_STATE_DIR", "/var/lib/mlops-backup")
TEXTFILE_DIR = os.environ.get("MLOPS_BACKUP_TEXTFILE_DIR", "/var/lib/prometheus/node-exporter")
JOB_NAME = re.compile(r"^[A-Za-z0-9:_.@-]+$")


def write_atomically(path, text, mode=0o644):
    """Write text to path through a temporary file in the same directory and a rename."""
    directory = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def metrics(job, last_success, interval):
    """The textfile collector lines of one job."""
    label = '{job="%s"}' % job
    return (
        "# HELP mlops_backup_last_success_timestamp_seconds Time of the last successful run of a backup job.\n"
        "# TYPE mlops_backup_last_success_timestamp_seconds gauge\n"
        "mlops_backup_last_success_timestamp_seconds%s %d\n"
        "# HELP mlops_backup_interval_seconds Longest scheduled time between two runs of a backup job.\n"
        "# TYPE mlops_backup_interval_seconds gauge\n"
        "mlops_backup_interval_seconds%s %d\n" % (label, last_success, label, interval)
    )


def stamp(job, now=None):
    """Record a success of job; return the files written (none for a job without a manifest)."""
    if not JOB_NAME.match(job):
        raise ValueError("not a job name: %r" % job)
    try:
        with open(os.path.join(STATE_DIR, "jobs", job + ".json")) as handle:
            interval = int(json.load(handle)["interval_seconds"])
    except FileNotFoundError:
        return []
    last_success = int(time.time() if now is None else now)
    stamps = os.path.join(STATE_DIR, "stamps")
    os.makedirs(stamps, mode=0o755, exist_ok=True)
    written = [os.path.join(stamps, job + ".json")]
    record = {"job": job, "last_success": last_success, "interval_seconds": interval}
    write_atomically(written[0], json.dumps(record, sort_keys=True) + "\n")
    if os.path.isdir(TEXTFILE_DIR):
        # The collector reads *.prom only: the temporary .prom.<random>.tmp is never half-read.
        written.append(os.path.join(TEXTFILE_DIR, "mlops-backup-%s.prom" % job))
        write_atomically(written[1], metrics(job, last_success, interval))
    return written


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: mlops-backup-stamp.py JOB\n")
        return 2
    written = stamp(sys.argv[1])
    if not written:
        sys.stderr.write("mlops-backup-stamp: %s keeps no freshness (no manifest); nothing recorded\n" % sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
