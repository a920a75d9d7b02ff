"""The OIDC mode's lock: the shipped oidc-auth overlay laid over the default mlflow lock.

Here rather than in tests/unit: ansible-test's unit copy of the collection has no role files.
"""

from __future__ import annotations

from ansible_collections.mlops.mlflow.plugins.filter.lock import lock_overlay
from conftest import REPO_ROOT
from support.role_template import role_vars

CONSTRAINTS = REPO_ROOT / "roles" / "mlflow_server" / "files" / "constraints"


def test_shipped_overlay_fits_the_default_lock():
    defaults = role_vars("mlflow_server")
    mlflow, oidc = defaults["mlflow_server_version"], defaults["mlflow_server_auth_oidc_version"]
    base = (CONSTRAINTS / f"mlflow-{mlflow}.txt").read_text()
    merged = lock_overlay(base, (CONSTRAINTS / f"oidc-auth-{oidc}.txt").read_text())
    pins = [line for line in merged.splitlines() if line and not line.startswith("#")]
    names = [line.split("==")[0].lower() for line in pins]
    assert len(names) == len(set(names))
    assert "gunicorn==23.0.0" in pins and f"mlflow-oidc-auth=={oidc}" in pins and f"mlflow=={mlflow}" in pins
