"""Summarise one ansible-playbook JSON result (the json stdout callback).

    summarize.py RUN_DIR MODE RC STARTED

Writes RUN_DIR/summary.json (machine-readable: hosts and their stats, changed
task names, failures) and RUN_DIR/summary.txt (for people). Task results are
never copied, so nothing a task printed can leak into the summary.
"""

import datetime
import json
import os
import sys


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


def as_text(summary):
    verb = "would change" if summary["mode"] == "drift-report" else "changed"
    lines = [
        "mlops-reconverge %s: rc=%s, %d %s, %d failed"
        % (summary["mode"], summary["rc"], len(summary["changed"]), verb, len(summary["failed"]))
    ]
    lines += ["  %s %s: %s" % (verb, item["host"], item["task"]) for item in summary["changed"]]
    lines += ["  FAILED %s: %s: %s" % (item["host"], item["task"], item["msg"]) for item in summary["failed"]]
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
    with open(os.path.join(run_dir, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)
    with open(os.path.join(run_dir, "summary.txt"), "w") as handle:
        handle.write(as_text(summary))


if __name__ == "__main__":
    main()
