"""mlops.mlflow.site from the copy ansible-galaxy installed converged a pi-shaped host."""

import json
import os
from pathlib import Path

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])


def test_the_installed_copy_is_the_only_one_the_run_saw():
    resolved = json.loads((EPHEMERAL / "resolved-collection.json").read_text())
    installed = EPHEMERAL / "installed" / "ansible_collections"
    assert list(resolved) == [str(installed)]
    assert list(resolved[str(installed)]) == ["mlops.mlflow"]
    # Only a built collection carries a manifest; the checkout has none.
    assert (installed / "mlops" / "mlflow" / "MANIFEST.json").is_file()
    assert not (PROJECT / "MANIFEST.json").exists()


def test_real_client_through_nginx(mlflow_smoke):
    env = (
        "SMOKE_ARTIFACT_MB=1 MLFLOW_TRACKING_USERNAME=alice MLFLOW_TRACKING_PASSWORD=installed-alice-pass-1 "
        "MLFLOW_TRACKING_INSECURE_TLS=true"
    )
    result = mlflow_smoke("both", "installed", uri="https://localhost", env=env)
    assert result["read"]["model_versions"] == 1
