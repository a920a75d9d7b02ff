"""README's Galaxy path, followed as a user would: the installed tarball, an inventory of one's own
outside the checkout, secrets in ansible-vault, mlops.mlflow.site converging an all-in-one host."""

import json
import os
from pathlib import Path

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]).resolve()
PASSWORD = "installed-alice-pass-1"


def test_the_runs_saw_only_the_installed_copy(user_runs):
    resolved = json.loads((user_runs.home / "resolved-collection.json").read_text())
    installed = user_runs.home / "collections" / "ansible_collections"
    assert list(resolved) == [str(installed)]
    assert list(resolved[str(installed)]) == ["mlops.mlflow"]
    # Only a built collection carries a manifest; the checkout has none.
    assert (installed / "mlops" / "mlflow" / "MANIFEST.json").is_file()
    assert not (PROJECT / "MANIFEST.json").exists()


def test_the_users_ansible_is_the_newest_core(user_runs):
    pins = (PROJECT / "requirements-cores.txt").read_text().split()
    newest = max((pin.split("==")[1] for pin in pins if pin.startswith("ansible-core==")), key=_version)
    assert (user_runs.home / "ansible-version.txt").read_text().startswith(f"ansible-playbook [core {newest}]")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_the_inventory_is_the_users_own(user_runs):
    inventory = user_runs.home / "inventory"
    assert not user_runs.home.resolve().is_relative_to(PROJECT)
    files = sorted(path for path in inventory.rglob("*"))
    assert not [path for path in files if path.is_symlink()]
    assert sorted(str(path.relative_to(inventory)) for path in files if path.is_file()) == [
        "group_vars/all/vault.yml",
        "group_vars/mlflow_monitoring.yml",
        "hosts.yml",
    ]
    assert (inventory / "group_vars/all/vault.yml").read_text().startswith("$ANSIBLE_VAULT;")
    assert not (user_runs.home / "ansible.cfg").exists()


def test_converge_then_nothing_changes(user_runs):
    assert user_runs.recap("converge")["mlops-installed"]["failed"] == 0
    assert user_runs.recap("converge")["mlops-installed"]["changed"] > 0
    assert user_runs.changed_tasks("reconverge") == []
    assert user_runs.recap("reconverge")["mlops-installed"]["changed"] == 0
    # --check --diff tells the truth: nothing to change.
    assert user_runs.recap("check")["mlops-installed"] == {
        "ok": user_runs.recap("check")["mlops-installed"]["ok"],
        "changed": 0,
        "unreachable": 0,
        "failed": 0,
    }


def test_no_secret_in_the_run_output(user_runs):
    vault = (Path(__file__).parent.parent / "user" / "group_vars" / "all" / "vault.yml").read_text()
    secrets = [
        line.split(":", 1)[1].strip() for line in vault.splitlines() if line.strip().startswith(("mlops_", "password"))
    ]
    secrets = [value for value in secrets if value]
    assert PASSWORD in secrets and len(secrets) == 6
    for run in ("converge", "reconverge", "check"):
        log = user_runs.log(run)
        assert not [value for value in secrets if value in log], run


def test_real_client_through_nginx(mlflow_smoke):
    env = (
        f"SMOKE_ARTIFACT_MB=1 MLFLOW_TRACKING_USERNAME=alice MLFLOW_TRACKING_PASSWORD={PASSWORD} "
        "MLFLOW_TRACKING_INSECURE_TLS=true"
    )
    result = mlflow_smoke("both", "installed", uri="https://localhost", env=env)
    assert result["read"]["model_versions"] == 1


def test_200_with_the_users_password_and_401_without(http):
    assert http("https://localhost/api/2.0/mlflow/experiments/search?max_results=1", "alice", PASSWORD)["status"] == 200
    assert http("https://localhost/api/2.0/mlflow/experiments/search?max_results=1")["status"] == 401
    assert (
        http("https://localhost/api/2.0/mlflow/experiments/search?max_results=1", "alice", "wrong-password-1")["status"]
        == 401
    )
