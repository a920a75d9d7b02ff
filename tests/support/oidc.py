"""OIDC mode test parts: mlflow-oidc-auth's venv, a real OpenID provider, a login without a browser.

* ``oidc_venv_python()``: a venv with the role's default mlflow and mlflow-oidc-auth, installed with
  the lock the role writes in OIDC mode (the mlflow lock with the oidc-auth overlay laid over it by
  the role's own ``lock_overlay`` filter). Cached in ~/.cache/mlops-mlflow/venvs like
  support.old_mlflow's, rebuilt when the lock or the pins change.
* ``Provider``: oidc-provider-mock on loopback in a thread, with client registration required (so
  a wrong client secret is refused) and users set with their claims (groups).
* ``browserless_login(server_url, provider, sub)``: the authorization code flow with plain HTTP
  requests: the server's /login redirects to the provider, whose form is submitted as ``sub``; the
  callback leaves the server's session cookie in the returned requests.Session.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import requests
from ansible_collections.mlops.mlflow.plugins.filter.lock import lock_overlay
from conftest import REPO_ROOT, find_free_port

from support.role_template import role_vars

_ROLE = REPO_ROOT / "roles" / "mlflow_server"
_DEFAULTS = role_vars("mlflow_server")
MLFLOW_VERSION = _DEFAULTS["mlflow_server_version"]
OIDC_AUTH_VERSION = _DEFAULTS["mlflow_server_auth_oidc_version"]
PINS = [f"mlflow=={MLFLOW_VERSION}", f"mlflow-oidc-auth=={OIDC_AUTH_VERSION}"]
VENV = Path.home() / ".cache" / "mlops-mlflow" / "venvs" / f"mlflow-{MLFLOW_VERSION}-oidc-auth-{OIDC_AUTH_VERSION}"
MARKER = VENV / "lock.sha256"


def role_lock() -> str:
    """The constraints the role installs with in OIDC mode."""
    base = (_ROLE / "files" / "constraints" / f"mlflow-{MLFLOW_VERSION}.txt").read_text()
    overlay = (_ROLE / "files" / "constraints" / f"oidc-auth-{OIDC_AUTH_VERSION}.txt").read_text()
    return lock_overlay(base, overlay)


def _stamp() -> str:
    return hashlib.sha256((role_lock() + "\n".join(PINS)).encode()).hexdigest()


def _is_current() -> bool:
    try:
        return (VENV / "bin" / "mlflow").exists() and MARKER.read_text().strip() == _stamp()
    except OSError:
        return False


def oidc_venv_python() -> Path:
    """The cached OIDC venv's python, (re)built from the role's lock when missing or stale."""
    if _is_current():
        return VENV / "bin" / "python"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / f".{VENV.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _is_current():
            MARKER.unlink(missing_ok=True)
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
            python = VENV / "bin" / "python"
            constraints = VENV / "constraints.txt"
            constraints.write_text(role_lock())
            subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", "--constraint", str(constraints), *PINS], check=True
            )
            subprocess.run([str(python), "-m", "pip", "check"], check=True)
            # Importing the app opens its database: a throwaway one inside the venv, not the cwd's auth.db.
            subprocess.run(
                [str(python), "-c", "import mlflow_oidc_auth.app"],
                check=True,
                capture_output=True,
                cwd=VENV,
                env={**os.environ, "OIDC_USERS_DB_URI": f"sqlite:///{VENV}/import-check.db"},
            )
            MARKER.write_text(_stamp() + "\n")
    return VENV / "bin" / "python"


@dataclass
class Provider:
    """oidc-provider-mock on 127.0.0.1 with one registered client."""

    issuer: str
    client_id: str = ""
    client_secret: str = ""

    def register_client(self, redirect_uri: str) -> None:
        answer = requests.post(
            f"{self.issuer}/oauth2/clients",
            json={"redirect_uris": [redirect_uri], "token_endpoint_auth_method": "client_secret_basic"},
            timeout=10,
        )
        answer.raise_for_status()
        self.client_id, self.client_secret = answer.json()["client_id"], answer.json()["client_secret"]

    def set_user(self, sub: str, groups: list[str]) -> None:
        claims = {"email": sub, "preferred_username": sub.split("@")[0], "name": sub, "groups": groups}
        requests.put(f"{self.issuer}/users/{sub}", json=claims, timeout=10).raise_for_status()

    def revoke_tokens(self, sub: str) -> None:
        requests.post(f"{self.issuer}/users/{sub}/revoke-tokens", timeout=10).raise_for_status()


@contextlib.contextmanager
def running_provider():
    """A Provider on a free loopback port, for the duration of the block."""
    from oidc_provider_mock import run_server_in_thread

    port = find_free_port()
    with run_server_in_thread(port=port, require_client_registration=True):
        yield Provider(issuer=f"http://127.0.0.1:{port}")


def browserless_login(server_url: str, sub: str) -> tuple[requests.Session, requests.Response]:
    """Log in at the server through the provider's form as `sub`; return the session and the last answer."""
    session = requests.Session()
    answer = session.get(f"{server_url}/login", allow_redirects=True, timeout=30)
    assert answer.status_code == 200 and "/oauth2/authorize" in answer.url, (answer.status_code, answer.url)
    # The provider's form posts back to the authorize URL it was served at.
    answer = session.post(answer.url, data={"sub": sub}, allow_redirects=True, timeout=60)
    return session, answer


def absolute(base: str, location: str) -> str:
    return urljoin(base, location)
