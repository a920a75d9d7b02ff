"""Verify the common role on a converged systemd host."""

import pytest


def test_systemd_is_pid_1(host):
    assert host.process.get(pid=1).comm == "systemd"


@pytest.mark.parametrize("package", ["ca-certificates", "tzdata", "acl", "python3-venv", "less"])
def test_base_packages_installed(host, package):
    assert host.package(package).is_installed


def test_timezone_is_configured(host):
    localtime = host.file("/etc/localtime")
    assert localtime.is_symlink
    assert localtime.linked_to == "/usr/share/zoneinfo/Europe/Berlin"
    assert host.file("/etc/timezone").content_string == "Europe/Berlin\n"
    assert host.run("date +%Z").stdout.strip() in {"CET", "CEST"}


def test_system_user_created(host):
    user = host.user("mlopsdemo")
    assert user.exists
    assert user.uid < 1000, "expected a system user"
    assert user.group == "mlopsdemo"
    assert user.home == "/var/lib/mlopsdemo"
    assert user.shell == "/usr/sbin/nologin"
    assert host.file("/var/lib/mlopsdemo").is_directory
