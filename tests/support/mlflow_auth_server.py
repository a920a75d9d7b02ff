"""A real `mlflow server --app-name basic-auth` on 127.0.0.1, from the test venv's mlflow."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import find_free_port

MLFLOW = Path(sys.executable).parent / "mlflow"


@dataclass
class AuthServer:
    url: str
    admin_username: str
    admin_password: str
    log: Path


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"mlflow server did not become healthy:\n{log.read_text()[-3000:]}")


def write_auth_config(path: Path, user_store: Path, auth_cache_ttl: int) -> Path:
    """MLflow's basic_auth.ini: READ by default, user `admin`, its own SQLite user store."""
    path.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{user_store}\n"
        "admin_username = admin\n"
        f"auth_cache_ttl_seconds = {auth_cache_ttl}\n"
    )
    return path


def start_auth_server(workdir: Path, port: int, admin_password: str, *, auth_cache_ttl: int = 0):
    """Start the server; return (AuthServer, Popen). The caller stops the process."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_auth_config(workdir / "basic_auth.ini", workdir / "auth.db", auth_cache_ttl)
    env = dict(
        os.environ,
        MLFLOW_AUTH_CONFIG_PATH=str(config),
        MLFLOW_AUTH_ADMIN_PASSWORD=admin_password,
        MLFLOW_FLASK_SERVER_SECRET_KEY="test-only-flask-secret-key",
    )
    log = workdir / "server.log"
    cmd = [
        str(MLFLOW),
        "server",
        "--app-name",
        "basic-auth",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination",
        str(workdir / "artifacts"),
    ]
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            cmd, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
    except RuntimeError:
        stop(proc)
        raise
    return AuthServer(url, "admin", admin_password, log), proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


@pytest.fixture(scope="module")
def mlflow_auth_server(tmp_path_factory):
    """One basic-auth mlflow server per test module."""
    server, proc = start_auth_server(
        tmp_path_factory.mktemp("mlflow-auth"), find_free_port(), "initial-admin-password-0001"
    )
    yield server
    stop(proc)
