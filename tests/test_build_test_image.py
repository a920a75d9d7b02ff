"""scripts/build-test-image builds any supported suite/architecture pair from one recipe, and the
molecule scenarios that run on those images can run beside each other."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
import yaml
from support.role_template import render_role_template

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "build-test-image"
PAIRS = [("bookworm", "amd64"), ("bookworm", "arm64"), ("trixie", "amd64"), ("trixie", "arm64")]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, check=False)


def _out(*args: str) -> str:
    result = _run(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("args", "tag"),
    [
        ((), "mlops-mlflow-test/debian:bookworm"),
        (("--suite", "bookworm", "--arch", "amd64"), "mlops-mlflow-test/debian:bookworm"),
        (("--suite", "trixie"), "mlops-mlflow-test/debian:trixie"),
        (("--arch", "arm64"), "mlops-mlflow-test/debian:bookworm-arm64"),
        (("--suite=trixie", "--arch=arm64"), "mlops-mlflow-test/debian:trixie-arm64"),
    ],
)
def test_tag_names_the_suite_and_a_foreign_architecture(args, tag):
    assert _out(*args, "--print-tag") == tag


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--suite", "sid"), "unsupported suite 'sid' (one of: bookworm trixie)"),
        (("--suite", "Trixie"), "unsupported suite 'Trixie'"),
        (("--arch", "i386"), "unsupported architecture 'i386' (one of: amd64 arm64)"),
        (("--arch", "aarch64"), "unsupported architecture 'aarch64'"),
        (("--suite",), "unsupported suite '--print-tag'"),
        (("--platform", "linux/arm64"), "usage:"),
    ],
)
def test_bad_suite_or_architecture_is_rejected_before_any_build(args, message):
    result = _run(*args, "--print-tag")
    assert result.returncode != 0
    assert message in result.stderr
    assert result.stdout == ""


def test_recipe_label_differs_for_every_pair_and_is_stable():
    hashes = {pair: _out("--suite", pair[0], "--arch", pair[1], "--print-recipe") for pair in PAIRS}
    assert len(set(hashes.values())) == len(PAIRS), hashes
    assert all(len(value) == 64 for value in hashes.values())
    assert _out("--print-recipe") == hashes[("bookworm", "amd64")]
    assert _out("--arch", "arm64", "--suite", "trixie", "--print-recipe") == hashes[("trixie", "arm64")]


def test_foreign_architecture_goes_through_docker_build_platform_not_import():
    # `docker import --platform` is ignored by the engine: the image would be recorded as amd64.
    text = SCRIPT.read_text()
    assert not [line for line in text.splitlines() if line.lstrip().startswith("docker import")]
    assert 'docker build --quiet --platform "linux/${arch}"' in text
    assert '--architectures="${arch}"' in text


def _platforms() -> dict[str, list[dict]]:
    shared = yaml.safe_load((ROOT / ".config" / "molecule" / "config.yml").read_text())["platforms"]
    found = {}
    for path in sorted((ROOT / "molecule").glob("*/molecule.yml")):
        own = yaml.safe_load(path.read_text()) or {}
        platforms = own.get("platforms") or [
            {**item, "name": item["name"].replace("${MOLECULE_SCENARIO_NAME}", path.parent.name)} for item in shared
        ]
        found[path.parent.name] = platforms
    return found


@pytest.mark.parametrize(
    ("scenario", "suite", "arch", "like"),
    [
        ("trixie-pi", "trixie", "amd64", "pi"),
        ("trixie-onprem", "trixie", "amd64", "onprem"),
        ("trixie-upgrade", "trixie", "amd64", "upgrade"),
        ("arm64-pi", "bookworm", "arm64", "pi"),
    ],
)
def test_platform_variants_run_the_original_scenario_on_the_built_image(scenario, suite, arch, like):
    tag = _out("--suite", suite, "--arch", arch, "--print-tag")
    platforms = _platforms()[scenario]
    assert {item["image"] for item in platforms} == {tag}
    if arch != "amd64":
        assert {item.get("platform") for item in platforms} == {f"linux/{arch}"}
    config = yaml.safe_load((ROOT / "molecule" / scenario / "molecule.yml").read_text())
    converge = ROOT / "molecule" / scenario / config["provisioner"]["playbooks"]["converge"]
    assert converge.resolve() == (ROOT / "molecule" / like / "converge.yml").resolve()
    tests = ROOT / "molecule" / scenario / config["verifier"]["directory"]
    assert tests.resolve() == (ROOT / "molecule" / like / "tests").resolve()
    for host_vars in (ROOT / "molecule" / scenario / "host_vars").glob("*.yml"):
        assert host_vars.stem in {item["name"] for item in platforms}
        assert host_vars.resolve().is_file()


def test_no_two_scenarios_share_a_container_or_network():
    # Lanes run scenarios side by side: a shared container name or network (or subnet) collides.
    names, networks, subnets = [], [], []
    for platforms in _platforms().values():
        names += [item["name"] for item in platforms]
        # A scenario's platforms declare its networks each (YAML anchors): once per scenario.
        declared = {network["name"]: network for item in platforms for network in item.get("docker_networks", [])}
        networks += list(declared)
        subnets += [config["subnet"] for network in declared.values() for config in network.get("ipam_config", [])]
    for values in (names, networks, subnets):
        assert len(values) == len(set(values)), sorted(v for v in values if values.count(v) > 1)


def _os_release(codename: str) -> dict:
    text = f'PRETTY_NAME="Debian GNU/Linux"\nVERSION_CODENAME={codename}\nID=debian\n'
    return {"content": base64.b64encode(text.encode()).decode()}


@pytest.mark.parametrize(
    ("codename", "package", "listen"),
    [
        ("bookworm", "nginx-light", "listen 8443 ssl http2 default_server;"),
        ("trixie", "nginx", "listen 8443 ssl default_server;\n    listen [::]:8443 ssl default_server;\n    http2 on;"),
        ("forky", "nginx", "http2 on;"),
    ],
)
def test_nginx_proxy_follows_the_debian_release(tmp_path, codename, package, listen):
    # nginx-light is transitional from trixie on; nginx 1.26 deprecates `listen ... http2`, 1.22 lacks `http2 on`.
    overrides = {
        "__nginx_proxy_os_release": _os_release(codename),
        "nginx_proxy_server_name": "localhost",
        "nginx_proxy_upstreams": ["127.0.0.1:5000"],
        "nginx_proxy_tls_enabled": True,
        "nginx_proxy_https_port": 8443,
    }
    text = render_role_template("nginx_proxy", "mlflow-site.conf.j2", tmp_path / "site.conf", tmp_path, overrides)
    assert listen in text
    assert ("http2 on;" in text) != ("ssl http2" in text)
    probe = tmp_path / "package.j2"
    probe.write_text("{{ _nginx_proxy_platform.package }}\n")
    # An absolute template path: the role's variables, a template of the test's own.
    assert render_role_template("nginx_proxy", str(probe), tmp_path / "package", tmp_path, overrides).strip() == package
