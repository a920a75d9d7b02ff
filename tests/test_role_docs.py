"""Each role's README.md carries the variables section scripts/role-docs generates from its spec."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _load_generator():
    loader = importlib.machinery.SourceFileLoader("role_docs", str(REPO_ROOT / "scripts" / "role-docs"))
    spec = importlib.util.spec_from_loader("role_docs", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


role_docs = _load_generator()
SPECS = role_docs.spec_files(REPO_ROOT)


def test_every_role_with_a_spec_is_covered():
    with_spec = {p.parent.parent.name for p in SPECS}
    roles = {p.name for p in (REPO_ROOT / "roles").iterdir() if (p / "tasks").is_dir()}
    assert roles <= with_spec, f"roles without meta/argument_specs.yml: {sorted(roles - with_spec)}"


@pytest.mark.parametrize("spec", SPECS, ids=[p.parent.parent.name for p in SPECS])
def test_readme_matches_argument_spec(spec):
    readme = spec.parent.parent / "README.md"
    current = readme.read_text(encoding="utf-8") if readme.exists() else None
    wanted = role_docs.render_readme(spec, current)
    assert current == wanted, (
        f"{readme.relative_to(REPO_ROOT)} is out of date with meta/argument_specs.yml: "
        "run scripts/role-docs and commit the README"
    )


def _role(tmp_path: Path, name: str, readme: str | None) -> Path:
    (tmp_path / "galaxy.yml").write_text("namespace: mlops\nname: mlflow\n")
    meta = tmp_path / "roles" / name / "meta"
    meta.mkdir(parents=True)
    spec = meta / "argument_specs.yml"
    spec.write_text(
        "argument_specs:\n"
        "  main:\n"
        "    short_description: Demo.\n"
        "    options:\n"
        "      demo_port: {type: int, default: 80, description: Port for I(demo_host).}\n"
        "      demo_mode: {type: str, default: a, choices: [a, b], description: 'Mode | kind.'}\n"
        "      demo_secret: {type: str, required: true, no_log: true, description: Secret of <name>.}\n"
        "      demo_users:\n"
        "        type: list\n"
        "        elements: dict\n"
        "        default: []\n"
        "        description: Users.\n"
        "        options:\n"
        "          name: {type: str, required: true, description: Login.}\n"
    )
    if readme is not None:
        (spec.parent.parent / "README.md").write_text(readme)
    return spec


def test_generator_keeps_prose_and_replaces_only_its_section(tmp_path):
    spec = _role(tmp_path, "_internal", "# Title\n\nHand-written.\n")
    first = role_docs.render_readme(spec, "# Title\n\nHand-written.\n")
    assert first.startswith("# Title\n\nHand-written.\n\n" + role_docs.BEGIN)
    assert role_docs.render_readme(spec, first) == first
    assert "| `demo_port` | int | no | `80` | Port for *demo_host*. |" in first
    assert "Mode \\| kind. Choices: `a`, `b`." in first
    assert "| `demo_secret` | str | yes |  | Secret of &lt;name&gt;. Secret (`no_log`). |" in first
    assert "#### demo_users" in first
    # A stale section between the markers is replaced; prose after it stays.
    edited = first.replace("Port for", "Old text for") + "\n## Notes\n\nKept.\n"
    again = role_docs.render_readme(spec, edited)
    assert "Old text" not in again and again.endswith("\n## Notes\n\nKept.\n")
    assert role_docs.stale(tmp_path) == [spec.parent.parent / "README.md"]


def test_generator_creates_a_missing_readme(tmp_path):
    spec = _role(tmp_path, "_internal", None)
    assert role_docs.render_readme(spec, None).startswith("# mlops.mlflow._internal\n\n" + role_docs.BEGIN)
    assert role_docs.spec_files(tmp_path) == [spec]
