"""mlflow_server_gc_enabled: the role's gc step (tasks/gc.yml through _systemd's job) writes
mlflow-gc.service and mlflow-gc.timer as below, read in check mode with --diff.

In venv mode the service takes the server's env file (EnvironmentFile) so that the store URI and the S3
credentials never reach its command line, runs as the mlflow user, may reach the network (the
server on loopback, PostgreSQL, S3), and only starts after the server, never pulls it up. This
machine has no systemd as PID 1, so the play stops at enabling the timer, after the units.
"""

from __future__ import annotations

import configparser
import json

from conftest import run_playbook

CALENDAR = "Mon *-*-* 01:00:00"


def _units(tmp_path, **extra) -> dict[str, str]:
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.import_role": {"name": "mlops.mlflow.mlflow_server", "tasks_from": "gc"}}],
    }
    variables = {
        "mlflow_server_gc_enabled": True,
        "mlflow_server_gc_on_calendar": CALENDAR,
        "mlflow_server_gc_older_than": "12h",
        "__systemd_job_unit_dir": str(tmp_path / "units"),
        "_mlflow_server_gc_script": str(tmp_path / "mlflow-gc"),
        **extra,
    }
    proc = run_playbook([play], tmp_path, variables=variables, check=True, diff=True)
    units = {}
    for task in json.loads(proc.stdout)["plays"][0]["tasks"]:
        result = task["hosts"]["localhost"]
        for item in result.get("results", [result]):
            dest = str(item.get("invocation", {}).get("module_args", {}).get("dest", ""))
            if item.get("diff") and dest.startswith(str(tmp_path)):
                units[dest.rsplit("/", 1)[-1]] = item["diff"][0]["after"]
    assert {"mlflow-gc", "mlflow-gc.service", "mlflow-gc.timer"} <= set(units), proc.stdout[-3000:]
    return units


def _ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(text)
    return parser


def test_gc_units(tmp_path):
    units = _units(tmp_path)
    service, timer = _ini(units["mlflow-gc.service"]), _ini(units["mlflow-gc.timer"])
    assert service["Service"]["ExecStart"] == str(tmp_path / "mlflow-gc")
    assert service["Service"]["EnvironmentFile"] == "/etc/mlflow/mlflow-server.env"
    assert (service["Service"]["User"], service["Service"]["Group"]) == ("mlflow", "mlflow")
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["RestrictAddressFamilies"] == "AF_INET AF_INET6 AF_UNIX"
    assert "PrivateNetwork" not in service["Service"]
    assert service["Service"]["ReadWritePaths"] == "/var/lib/mlflow"
    assert service["Unit"]["After"] == "mlflow-server.service"
    assert "Wants" not in service["Unit"] and "Requires" not in service["Unit"]
    assert timer["Timer"]["OnCalendar"] == CALENDAR
    assert timer["Timer"]["Persistent"] == "true"
    assert 'OLDER_THAN = "12h"' in units["mlflow-gc"]
    assert 'TRACKING_URI = "http://127.0.0.1:5000"' in units["mlflow-gc"]


def test_gc_units_in_container_mode(tmp_path):
    """Container mode: the job runs the same script inside the server's image, through the image's
    entrypoint (it reads the env file in the container), with the server's volumes and run options
    and the script mounted read-only; the unit runs as root (the engine's client), after the server
    and the docker engine, and removes a container a killed run left behind first."""
    units = _units(
        tmp_path,
        mlflow_server_install_mode="container",
        mlflow_server_container_engine="docker",
        __mlflow_server_ids={"uid": "998", "gid": "997"},
    )
    service = _ini(units["mlflow-gc.service"])
    script = str(tmp_path / "mlflow-gc")
    argv = service["Service"]["ExecStart"].split()
    assert argv[:5] == ["/usr/bin/docker", "run", "--rm", "--name", "mlflow-gc"]
    assert argv[-3:] == ["localhost/mlops-mlflow:" + argv[-3].split(":", 1)[1], "python", script]
    assert argv[argv.index("--entrypoint") + 1] == "/etc/mlflow/container-entrypoint.sh"
    assert argv[argv.index("--user") + 1] == "998:997"
    assert argv[argv.index("--network") + 1] == "host"
    volumes = [argv[i + 1] for i, word in enumerate(argv) if word == "--volume"]
    assert f"{script}:{script}:ro" in volumes
    assert "/var/lib/mlflow:/var/lib/mlflow" in volumes and "/etc/mlflow:/etc/mlflow:ro" in volumes
    assert {"--read-only", "--security-opt", "no-new-privileges"} <= set(argv)
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert (service["Service"]["User"], service["Service"]["Group"]) == ("root", "root")
    assert service["Service"]["ExecStartPre"] == "-/usr/bin/docker rm --force mlflow-gc"
    # No EnvironmentFile: the secrets stay off the engine's view of the container (inspect shows
    # --env values, not what the entrypoint reads).
    assert "EnvironmentFile" not in service["Service"]
    text = units["mlflow-gc.service"]
    assert "After=mlflow-server.service" in text and "After=docker.service" in text
    assert "Requires=docker.service" in text
