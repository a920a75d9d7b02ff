"""Render a role's real template the way the role writes it, for tests.

``role_vars(role)`` is the role's defaults/main.yml updated with its vars/main.yml;
``render_role_template(role, template, dest, tmp_path, overrides, inventory)`` runs ansible's template
module on localhost with those variables plus `overrides` (all as extra vars, so an override
also beats vars/main.yml) and returns the rendered text.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from conftest import REPO_ROOT, run_playbook


def role_vars(role: str) -> dict:
    """The role's defaults, then its vars, as the role sees them (unrendered)."""
    variables: dict = {}
    for part in ("defaults", "vars"):
        path = REPO_ROOT / "roles" / role / part / "main.yml"
        if path.exists():
            variables.update(yaml.safe_load(path.read_text()) or {})
    return variables


def render_role_template(
    role: str, template: str, dest: Path, tmp_path: Path, overrides: dict | None = None, inventory: str | None = None
) -> str:
    """Render roles/<role>/templates/<template> to `dest` with the role's variables and `overrides`
    (and the groups and hostvars of `inventory`, INI text, when given)."""
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Render the role template",
                "ansible.builtin.template": {
                    "src": str(REPO_ROOT / "roles" / role / "templates" / template),
                    "dest": str(dest),
                    "mode": "0644",
                },
            }
        ],
    }
    proc = run_playbook([play], tmp_path, variables={**role_vars(role), **(overrides or {})}, inventory=inventory)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return Path(dest).read_text()
