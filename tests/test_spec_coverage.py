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
    "object_store": {
        "object_store_seaweedfs_version",
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


def callers_words(internal: str) -> set[str]:
    """Words of every role file outside an internal role: the options its callers pass."""
    words: set[str] = set()
    for path in sorted((REPO_ROOT / "roles").rglob("*")):
        if path.is_file() and internal not in path.relative_to(REPO_ROOT / "roles").parts[:1]:
            words |= set(re.findall(r"[A-Za-z0-9_]+", path.read_text(encoding="utf-8", errors="replace")))
    return words


def uncovered() -> dict[str, set[str]]:
    text = corpus()
    words = set(re.findall(r"[A-Za-z0-9_]+", text))
    out = {}
    for role, names in spec_options().items():
        # An internal role (leading underscore) is driven only by the collection's roles: an
        # option counts when a caller passes it, since the callers' scenarios then exercise it.
        # An option no caller passes is dead and must go.
        known = words if not role.startswith("_") else callers_words(role)
        missing = {n for n in names if n not in known}
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
