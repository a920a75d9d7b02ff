"""Changelog fragments lint with antsibull-changelog and tell users what changed, not how it was built."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
FRAGMENTS = sorted((REPO_ROOT / "changelogs" / "fragments").glob("*.y*ml"))
# Development history a user of the collection never sees: the test suite, CI, benches, refactors.
DEV_HISTORY = re.compile(r"\b(molecule|scenarios?|pytest|unit tests?|CI|refactor\w*|make bench|benchmarks?)\b")


def test_fragments_lint():
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "antsibull-changelog"), "lint"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


@pytest.mark.parametrize("fragment", FRAGMENTS, ids=[p.name for p in FRAGMENTS])
def test_fragment_describes_user_visible_changes(fragment):
    sections = yaml.safe_load(fragment.read_text()) or {}
    entries = [
        entry
        for name, items in sections.items()
        if name != "trivial"
        for entry in ([items] if isinstance(items, str) else items)
    ]
    offenders = [e for e in entries if DEV_HISTORY.search(e)]
    assert offenders == [], f"{fragment.name}: development history belongs in `trivial:` or nowhere"
