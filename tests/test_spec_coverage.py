"""Every variable of a role's argument_spec is exercised by a molecule scenario or a test.

A variable no scenario or test sets or reads is either dead or untested; it must be covered or
removed. The search is textual (the name as a whole word) over molecule/** and tests/**, leaving
out this file, where UNCOVERED_PENDING names them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
SEARCHED = ("molecule", "tests")
SKIPPED_SUFFIXES = {".pyc", ".tar.gz", ".gz", ".png", ".db"}

# Known uncovered variables, to be driven to empty: each one gets a scenario or test that sets it,
# or is removed from its role. Only ever remove names from this list; the test fails when a listed
# variable becomes covered (take it off the list then) and when a new one is uncovered.
UNCOVERED_PENDING: dict[str, set[str]] = {
    "_systemd": {
        "_systemd_account_directories",
        "_systemd_catch_up_reload_paths",
        "_systemd_catch_up_restart_paths",
        "_systemd_catch_up_service",
        "_systemd_job_address_families",
        "_systemd_job_cron_job",
        "_systemd_job_cron_special_time",
        "_systemd_job_cron_user",
        "_systemd_job_enabled",
        "_systemd_job_group",
        "_systemd_job_hardened",
        "_systemd_job_instances",
        "_systemd_job_manager",
        "_systemd_job_memory_deny_write_execute",
        "_systemd_job_on_calendar",
        "_systemd_job_private_network",
        "_systemd_job_randomized_delay",
        "_systemd_job_read_write_paths",
        "_systemd_job_remove_files",
        "_systemd_job_remove_ipc",
        "_systemd_job_service_lines",
        "_systemd_job_timer_description",
        "_systemd_job_unit_lines",
        "_systemd_job_user",
    },
    "common": {
        "common_packages",
    },
    "layout": {
        "mlops_s3_prefix",
    },
    "mlflow_server": {
        "mlflow_server_allowed_hosts",
        "mlflow_server_auth_admin_username",
        "mlflow_server_auth_cache_ttl_seconds",
        "mlflow_server_auth_database_uri",
        "mlflow_server_config_dir",
        "mlflow_server_container_image",
        "mlflow_server_container_image_source",
        "mlflow_server_db_backup",
        "mlflow_server_db_backup_dir",
        "mlflow_server_db_name",
        "mlflow_server_db_port",
        "mlflow_server_enable_job_execution",
        "mlflow_server_extra_pip_packages",
        "mlflow_server_group",
        "mlflow_server_install_dir",
        "mlflow_server_memory_max",
        "mlflow_server_restart_sec",
        "mlflow_server_serve_artifacts",
        "mlflow_server_sqlite_backup_on_calendar",
        "mlflow_server_user",
    },
    "object_store": {
        "object_store_bucket_versioning",
        "object_store_data_dir",
        "object_store_group",
        "object_store_minio_mc_sha256",
        "object_store_minio_mc_url",
        "object_store_minio_sha256",
        "object_store_minio_url",
        "object_store_seaweedfs_version",
        "object_store_seaweedfs_volume_size_limit_mb",
        "object_store_user",
    },
    "postgres": {
        "postgres_backup_dir",
        "postgres_backup_on_calendar",
        "postgres_db_name",
        "postgres_db_user",
        "postgres_effective_cache_size",
        "postgres_maintenance_work_mem",
        "postgres_max_connections",
    },
    "reconverge": {
        "reconverge_ansible_version",
        "reconverge_apply_on_calendar",
        "reconverge_checkout_dir",
        "reconverge_drift_report_on_calendar",
        "reconverge_git_branch",
        "reconverge_inventory",
        "reconverge_log_dir",
        "reconverge_playbook",
        "reconverge_randomized_delay",
    },
    "s3_iam": {
        "s3_iam_policy_name",
    },
}


def spec_options() -> dict[str, set[str]]:
    """{role: top-level option names of every entry point} for every roles/*/meta/argument_specs.yml."""
    out: dict[str, set[str]] = {}
    for spec in sorted((REPO_ROOT / "roles").glob("*/meta/argument_specs.y*ml")):
        entries = (yaml.safe_load(spec.read_text()) or {}).get("argument_specs") or {}
        out[spec.parent.parent.name] = {
            name for entry in entries.values() for name in (entry or {}).get("options") or {}
        }
    return out


def corpus() -> str:
    this = Path(__file__).resolve()
    texts = []
    for top in SEARCHED:
        for path in sorted((REPO_ROOT / top).rglob("*")):
            if not path.is_file() or path.resolve() == this or "__pycache__" in path.parts:
                continue
            if any(path.name.endswith(s) for s in SKIPPED_SUFFIXES):
                continue
            try:
                texts.append(path.read_text(encoding="utf-8"))
            except UnicodeDecodeError:
                continue
    return "\n".join(texts)


def uncovered() -> dict[str, set[str]]:
    text = corpus()
    words = set(re.findall(r"[A-Za-z0-9_]+", text))
    out = {}
    for role, names in spec_options().items():
        missing = {n for n in names if n not in words}
        if missing:
            out[role] = missing
    return out


@pytest.fixture(scope="module")
def found() -> dict[str, set[str]]:
    return uncovered()


def test_every_spec_variable_is_exercised(found):
    new = {role: sorted(names - UNCOVERED_PENDING.get(role, set())) for role, names in found.items()}
    new = {role: names for role, names in new.items() if names}
    listing = "\n".join(f"  {role}: {', '.join(names)}" for role, names in sorted(new.items()))
    assert not new, (
        "argument_spec variables that no molecule scenario or test exercises "
        f"(cover them or remove them from the role):\n{listing}"
    )


def test_pending_list_only_shrinks(found):
    covered = {role: sorted(names - found.get(role, set())) for role, names in UNCOVERED_PENDING.items()}
    covered = {role: names for role, names in covered.items() if names}
    listing = "\n".join(f"  {role}: {', '.join(names)}" for role, names in sorted(covered.items()))
    assert not covered, f"covered now, take them off UNCOVERED_PENDING in {Path(__file__).name}:\n{listing}"


def test_pending_names_are_spec_variables():
    options = spec_options()
    stale = {role: sorted(names - options.get(role, set())) for role, names in UNCOVERED_PENDING.items()}
    assert not {r: n for r, n in stale.items() if n}, f"not in any argument_spec any more: {stale}"
