"""The ansible-core versions the collection claims are the ones its sanity and unit tests run on.

scripts/core-matrix runs `ansible-test sanity` and `ansible-test units` on requirements-dev.txt's
ansible-core and on each pin of requirements-cores.txt; meta/runtime.yml's requires_ansible,
every role's min_ansible_version and tests/sanity/ignore-X.Y.txt must agree with that list.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parent.parent


def _pins(path: Path) -> list[Version]:
    found = re.findall(r"^ansible-core==(\S+)\s*$", path.read_text(), flags=re.MULTILINE)
    return [Version(v) for v in found]


def _tested_versions() -> list[Version]:
    main = _pins(REPO_ROOT / "requirements-dev.txt")
    assert len(main) == 1, "requirements-dev.txt must pin ansible-core exactly once"
    extra = _pins(REPO_ROOT / "requirements-cores.txt")
    assert extra, "requirements-cores.txt pins no ansible-core"
    return sorted(main + extra)


def _tested_minors() -> list[tuple[int, int]]:
    return sorted({(v.major, v.minor) for v in _tested_versions()})


def test_each_tested_minor_once_and_without_gaps():
    versions = _tested_versions()
    minors = [(v.major, v.minor) for v in versions]
    assert len(set(minors)) == len(minors), f"two pins of one ansible-core minor: {versions}"
    majors = {m[0] for m in minors}
    assert majors == {2}, minors
    numbers = [m[1] for m in _tested_minors()]
    assert numbers == list(range(numbers[0], numbers[-1] + 1)), f"a minor between is not tested: {minors}"


def test_requires_ansible_admits_exactly_the_tested_minors():
    runtime = yaml.safe_load((REPO_ROOT / "meta" / "runtime.yml").read_text())
    spec = SpecifierSet(runtime["requires_ansible"])
    for version in _tested_versions():
        assert spec.contains(version), f"requires_ansible {spec} refuses tested ansible-core {version}"
    admitted = [(2, n) for n in range(0, 40) if spec.contains(f"2.{n}.0") or spec.contains(f"2.{n}.99")]
    assert admitted == _tested_minors(), (
        f"requires_ansible {spec} admits ansible-core {admitted}, the matrix tests {_tested_minors()}"
    )


def test_every_role_claims_the_oldest_tested_minor():
    oldest = "{}.{}".format(*_tested_minors()[0])
    claims = {
        meta.parent.parent.name: str(yaml.safe_load(meta.read_text())["galaxy_info"].get("min_ansible_version"))
        for meta in sorted((REPO_ROOT / "roles").glob("*/meta/main.yml"))
    }
    assert claims
    wrong = {role: claim for role, claim in claims.items() if claim != oldest}
    assert not wrong, f"min_ansible_version must be {oldest!r} (the oldest tested ansible-core): {wrong}"


def test_a_sanity_ignore_file_for_each_tested_minor_and_no_other():
    have = sorted(p.name for p in (REPO_ROOT / "tests" / "sanity").glob("ignore-*.txt"))
    want = sorted("ignore-{}.{}.txt".format(*m) for m in _tested_minors())
    assert have == want


def test_the_suite_runs_the_matrix():
    steps = (REPO_ROOT / "scripts" / "test").read_text()
    assert "scripts/core-venvs" in steps
    assert "scripts/core-matrix" in steps


def test_extra_requirements_are_the_releases_of_the_mlflow_lock_file():
    mlflow = re.search(r"^mlflow==(\S+)$", (REPO_ROOT / "requirements-dev.txt").read_text(), flags=re.MULTILINE)
    lock = (
        REPO_ROOT / "roles" / "mlflow_server" / "files" / "constraints" / f"mlflow-{mlflow.group(1)}.txt"
    ).read_text()
    locked = {n.lower(): v for n, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", lock, flags=re.MULTILINE)}
    extra = re.findall(
        r"^(?!ansible-core==)([A-Za-z0-9_.-]+)==(\S+)",
        (REPO_ROOT / "requirements-cores.txt").read_text(),
        flags=re.MULTILINE,
    )
    assert extra
    assert {n.lower(): v for n, v in extra} == {n.lower(): locked.get(n.lower()) for n, _ in extra}
