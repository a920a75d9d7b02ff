"""mlflow_server's optional flags, statically: what the role installs and what preflight refuses.

The real server runs with these options in tests/integration/test_mlflow_server_options.py and in
the container scenario's verify.
"""

from __future__ import annotations

import json
import re
from importlib.metadata import requires
from pathlib import Path

import pytest
from conftest import play_results, run_playbook

ROLE = Path(__file__).resolve().parents[1] / "roles" / "mlflow_server"
LOCKS = sorted((ROLE / "files" / "constraints").glob("mlflow-*.txt"))


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def _preflight(variables: dict, tmp_path: Path, msg: str = "{{ _mlflow_server_pip_packages }}"):
    play = {
        "name": "mlflow_server preflight",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {"ansible.builtin.import_role": {"name": "mlops.mlflow.mlflow_server", "tasks_from": "preflight"}},
            {"ansible.builtin.debug": {"msg": msg}},
        ],
    }
    return run_playbook([play], tmp_path, variables=variables, check=True)


@pytest.mark.parametrize("lock", LOCKS, ids=lambda path: path.name)
def test_lock_pins_the_prometheus_exporter_and_its_requirements(lock):
    pins = _pins(lock)
    assert "prometheus-flask-exporter" in pins
    # Everything the exporter needs is pinned too (the dev venv holds the same exporter).
    needed = {
        re.sub(r"[-_.]+", "-", re.split(r"[ ;<>=!~\[]", req, maxsplit=1)[0]).lower()
        for req in requires("prometheus-flask-exporter")
    }
    assert needed <= pins.keys(), needed - pins.keys()


def test_dev_venv_runs_the_locked_exporter():
    from importlib.metadata import version

    pins = _pins(ROLE / "files" / "constraints" / "mlflow-3.17.2.txt")
    assert version("prometheus-flask-exporter") == pins["prometheus-flask-exporter"]
    assert version("prometheus-client") == pins["prometheus-client"]


def test_prometheus_dir_installs_the_exporter(tmp_path):
    on = _preflight({"mlflow_server_prometheus_dir": "/var/lib/mlflow/prometheus"}, tmp_path)
    assert on.returncode == 0, on.stdout[-3000:]
    assert "prometheus-flask-exporter" in play_results(json.loads(on.stdout)["plays"][0])[-1]["msg"]
    off = _preflight({}, tmp_path)
    assert off.returncode == 0, off.stdout[-3000:]
    assert "prometheus-flask-exporter" not in play_results(json.loads(off.stdout)["plays"][0])[-1]["msg"]


@pytest.mark.parametrize(
    "variables",
    [
        {"mlflow_server_extra_env": {"BAD-NAME": "x"}},
        {"mlflow_server_extra_env": {"1ST": "x"}},
        {"mlflow_server_extra_env": {"GOOD": "x", "has space": "y"}},
    ],
)
def test_preflight_refuses_bad_extra_env_names(variables, tmp_path):
    proc = _preflight(variables, tmp_path)
    assert proc.returncode != 0
    assert "mlflow_server_extra_env" in proc.stdout
    assert "[]" not in proc.stdout.split("offending:")[1][:40]


def test_preflight_takes_any_extra_env_value(tmp_path):
    extra = {"_OK": 'it\'s "$HOME" \\ %h `id`\nnext', "OK_2": "plain"}
    proc = _preflight({"mlflow_server_extra_env": extra}, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_preflight_refuses_gunicorn_and_uvicorn_opts_together(tmp_path):
    proc = _preflight(
        {"mlflow_server_gunicorn_opts": "--timeout 60", "mlflow_server_uvicorn_opts": "--timeout-keep-alive 5"},
        tmp_path,
    )
    assert proc.returncode != 0
    assert "mlflow_server_gunicorn_opts" in proc.stdout and "mlflow_server_uvicorn_opts" in proc.stdout


@pytest.mark.parametrize(
    "variables, present, absent",
    [
        ({}, ["--allowed-hosts 'localhost,localhost:*,127.0.0.1,127.0.0.1:*"], ["--gunicorn-opts"]),
        (
            {
                "mlflow_server_gunicorn_opts": "--timeout 60",
                "mlflow_server_cors_allowed_origins": ["https://ml.example"],
            },
            ["--gunicorn-opts '--timeout 60'"],
            ["--allowed-hosts", "--cors-allowed-origins"],
        ),
    ],
)
def test_gunicorn_moves_the_allowlists_to_the_env_file(variables, present, absent, tmp_path):
    args_tpl = ROLE / "templates" / "_server_args.j2"
    env_tpl = ROLE / "templates" / "mlflow-server.env.j2"
    msg = "\n".join(f"{{{{ lookup('ansible.builtin.template', '{tpl}') }}}}" for tpl in (args_tpl, env_tpl))
    proc = _preflight(variables, tmp_path, msg=msg)
    assert proc.returncode == 0, proc.stdout[-3000:]
    args, env = play_results(json.loads(proc.stdout)["plays"][0])[-1]["msg"].split("\n", 1)
    for text in present:
        assert text in args
    for text in absent:
        assert text not in args
    if variables:
        assert "MLFLOW_SERVER_ALLOWED_HOSTS='localhost,localhost:*,127.0.0.1,127.0.0.1:*" in env
        assert "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS='https://ml.example'" in env
    else:
        assert "MLFLOW_SERVER_ALLOWED_HOSTS" not in env
