"""Every systemd service unit of the collection takes its sandbox from mlops.mlflow.systemd_hardening.

Every roles/*/templates/*.service.j2 must call the filter and write no hardening directive by
hand (which is how the units drifted apart), unless it is in EXEMPT with the reason it cannot be
sandboxed. Each unit of a role (EXPECTED) is also rendered with its role's defaults and vars, as
the role writes it, and must carry the whole block once, with the knobs that unit needs. A
generic template (GENERIC) takes its knobs from the role including it.
"""

from __future__ import annotations

import configparser
import re

import pytest
from ansible_collections.mlops.mlflow.plugins.filter.systemd import systemd_hardening
from conftest import REPO_ROOT, run_playbook
from support.role_template import role_vars

# Units that cannot run in the sandbox, and why.
EXEMPT = {
    # Runs the container engine's CLI as root (docker socket, podman's namespaces); the sandbox
    # is the container's own: --read-only, --cap-drop ALL, no-new-privileges.
    "mlflow_server/mlflow-server-container.service.j2",
    # Runs ansible-playbook as root to configure the whole host.
    "reconverge/mlops-reconverge@.service.j2",
}

TEMPLATES = sorted(
    str(path.relative_to(REPO_ROOT / "roles")).replace("/templates/", "/")
    for path in (REPO_ROOT / "roles").glob("*/templates/**/*.service.j2")
)
SANDBOXED = [name for name in TEMPLATES if name not in EXEMPT]
# Templates whose knobs come from the including role (rendered there, not here).
GENERIC = {"_systemd/job.service.j2"}

# Every directive the filter may write.
DIRECTIVES = sorted(
    {line.split("=", 1)[0] for line in systemd_hardening(["/x"], private_network=True, remove_ipc=True).splitlines()}
)

# What each unit must keep (at least as strict as before the filter): families, and which
# optional directives it has.
EXPECTED = {
    "mlflow_server/mlflow-server.service.j2": {
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "MemoryDenyWriteExecute": None,
        "RemoveIPC": "true",
        "PrivateNetwork": None,
        "ReadWritePaths": "/var/lib/mlflow /var/log/mlflow",
    },
    "mlflow_server/mlflow-sqlite-backup.service.j2": {
        "RestrictAddressFamilies": "AF_UNIX",
        "MemoryDenyWriteExecute": "true",
        # Shares its user with the running server.
        "RemoveIPC": None,
        "PrivateNetwork": "true",
        "ReadWritePaths": "/var/backups/mlops-mlflow/sqlite",
    },
    "object_store/minio.service.j2": {
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        "MemoryDenyWriteExecute": "true",
        "RemoveIPC": "true",
        "PrivateNetwork": None,
        "ReadWritePaths": "/var/lib/mlops-object-store",
    },
    "object_store/seaweedfs.service.j2": {
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        "MemoryDenyWriteExecute": "true",
        "RemoveIPC": "true",
        "PrivateNetwork": None,
        "ReadWritePaths": "/var/lib/mlops-object-store",
    },
    "postgres/pg-backup.service.j2": {
        # pg_dump reaches the server over its unix socket.
        "RestrictAddressFamilies": "AF_UNIX",
        "MemoryDenyWriteExecute": "true",
        # Runs as postgres: RemoveIPC would destroy the server's shared memory.
        "RemoveIPC": None,
        "PrivateNetwork": "true",
        "ReadWritePaths": "/var/backups/mlops-mlflow/postgres",
    },
}


# The role units of EXPECTED the tree holds (a unit moved onto a generic template leaves).
RENDERED = [name for name in SANDBOXED if name in EXPECTED]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, str]:
    """Every role unit template, rendered as its role would write it: name -> text."""
    units = {}
    for role in sorted({name.split("/", 1)[0] for name in RENDERED}):
        tmp_path = tmp_path_factory.mktemp(role)
        names = [name.split("/", 1)[1] for name in RENDERED if name.startswith(role + "/")]
        play = {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Render the unit templates",
                    "ansible.builtin.template": {
                        "src": str(REPO_ROOT / "roles" / role / "templates") + "/{{ item }}",
                        "dest": str(tmp_path) + "/{{ item }}",
                        "mode": "0644",
                    },
                    "loop": names,
                }
            ],
        }
        proc = run_playbook([play], tmp_path, variables=role_vars(role))
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        for name in names:
            units[role + "/" + name] = (tmp_path / name).read_text()
    return units


def _service(text: str) -> list[tuple[str, str]]:
    """The [Service] section's directives, in order (repeats kept)."""
    section, directives = None, []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if re.match(r"^\[.+\]$", line):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            directives.append((key, value))
    return directives


def test_every_unit_template_is_checked():
    assert RENDERED, "no unit template to render"
    unchecked = sorted(set(SANDBOXED) - set(EXPECTED) - GENERIC)
    assert not unchecked, f"new unit templates {unchecked}: add them to EXPECTED (or EXEMPT, with why)"


@pytest.mark.parametrize("name", SANDBOXED)
def test_template_writes_no_hardening_by_hand(name):
    role, template = name.split("/", 1)
    source = (REPO_ROOT / "roles" / role / "templates" / template).read_text()
    assert re.search(r"\|\s*mlops\.mlflow\.systemd_hardening\b", source), f"{name} does not call the filter"
    by_hand = [key for key in DIRECTIVES if re.search(rf"^\s*{re.escape(key)}=", source, re.MULTILINE)]
    assert not by_hand, f"{name} sets {by_hand} by hand: pass them to mlops.mlflow.systemd_hardening"


@pytest.mark.parametrize("name", RENDERED)
def test_unit_gets_the_whole_hardening_block(rendered, name):
    directives = _service(rendered[name])
    keys = [key for key, _ in directives]
    values = dict(directives)
    # The block the filter writes with this unit's own knobs, whole and once.
    block = systemd_hardening(
        values.get("ReadWritePaths", "").split(),
        address_families=values["RestrictAddressFamilies"].split(),
        private_network=values.get("PrivateNetwork") == "true",
        memory_deny_write_execute=values.get("MemoryDenyWriteExecute") == "true",
        remove_ipc=values.get("RemoveIPC") == "true",
    )
    assert block in rendered[name]
    for key in DIRECTIVES:
        expected = 2 if key == "SystemCallFilter" else (1 if key in block else 0)
        assert keys.count(key) == expected, (key, keys)
    for key, value in EXPECTED[name].items():
        assert values.get(key) == value, (key, values.get(key))


def test_the_units_parse(rendered):
    for name, text in rendered.items():
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        parser.read_string(text)
        assert parser.has_section("Service"), name
        assert parser["Service"]["NoNewPrivileges"] == "true", name
