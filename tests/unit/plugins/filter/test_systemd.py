"""mlops.mlflow.systemd_hardening: the sandbox directives every unit of the collection shares."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.mlops.mlflow.plugins.filter.systemd import FilterModule, systemd_hardening

COMMON = [
    "NoNewPrivileges=true",
    "ProtectSystem=strict",
    "ProtectHome=true",
    "PrivateTmp=true",
    "PrivateDevices=true",
    "ProtectKernelTunables=true",
    "ProtectKernelModules=true",
    "ProtectKernelLogs=true",
    "ProtectControlGroups=true",
    "ProtectClock=true",
    "ProtectHostname=true",
    "ProtectProc=invisible",
    "RestrictNamespaces=true",
    "RestrictRealtime=true",
    "RestrictSUIDSGID=true",
    "LockPersonality=true",
    "CapabilityBoundingSet=",
    "AmbientCapabilities=",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged",
    "SystemCallErrorNumber=EPERM",
]
NET = ["AF_INET", "AF_INET6", "AF_UNIX"]


def _directives(text):
    return dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("SystemCallFilter="))


def test_is_registered():
    assert FilterModule().filters()["systemd_hardening"] is systemd_hardening


def test_defaults_are_the_strictest():
    text = systemd_hardening(["/var/backups/x"])
    lines = text.splitlines()
    for line in COMMON:
        assert line in lines
    assert lines.count("SystemCallFilter=@system-service") == 1
    directives = _directives(text)
    assert directives["RestrictAddressFamilies"] == "AF_UNIX"
    assert directives["PrivateNetwork"] == "true"
    assert directives["MemoryDenyWriteExecute"] == "true"
    # Off by default: it would destroy the IPC of a server sharing the unit's user.
    assert "RemoveIPC" not in directives
    assert directives["ReadWritePaths"] == "/var/backups/x"
    assert not text.endswith("\n")


def test_the_documented_call():
    text = systemd_hardening(
        ["/var/lib/a", "/var/log/a"],
        address_families=["AF_UNIX"],
        private_network=False,
        memory_deny_write_execute=True,
        remove_ipc=False,
    )
    directives = _directives(text)
    assert "PrivateNetwork" not in directives
    assert directives["ReadWritePaths"] == "/var/lib/a /var/log/a"


@pytest.mark.parametrize(
    ("kwargs", "present", "absent"),
    [
        ({"memory_deny_write_execute": False}, [], ["MemoryDenyWriteExecute"]),
        ({"memory_deny_write_execute": True}, ["MemoryDenyWriteExecute=true"], []),
        ({"remove_ipc": True}, ["RemoveIPC=true"], []),
        ({"remove_ipc": False}, [], ["RemoveIPC"]),
        ({"private_network": True}, ["PrivateNetwork=true"], []),
        (
            {"private_network": False, "address_families": NET},
            ["RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"],
            ["PrivateNetwork"],
        ),
        ({"address_families": []}, ["RestrictAddressFamilies=none"], []),
        (
            {"private_network": False, "address_families": [*NET, "AF_NETLINK", "AF_INET"]},
            ["RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK"],
            [],
        ),
        # Netlink alone reaches no other host: a private network is fine.
        (
            {"address_families": ["AF_UNIX", "AF_NETLINK"]},
            ["RestrictAddressFamilies=AF_UNIX AF_NETLINK", "PrivateNetwork=true"],
            [],
        ),
    ],
)
def test_knobs(kwargs, present, absent):
    lines = systemd_hardening(["/srv/x"], **kwargs).splitlines()
    for line in present:
        assert line in lines
    keys = [line.split("=", 1)[0] for line in lines]
    for key in absent:
        assert key not in keys
    for line in COMMON:
        assert line in lines


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        ([], None),
        (None, None),
        (["/a"], "/a"),
        (["/a", "/b/c"], "/a /b/c"),
        (["/a/", "/a", "/b"], "/a /b"),
        (("/a",), "/a"),
    ],
)
def test_read_write_paths(paths, expected):
    directives = _directives(systemd_hardening(paths))
    assert directives.get("ReadWritePaths") == expected


@pytest.mark.parametrize(
    ("paths", "kwargs", "message"),
    [
        (["var/lib/x"], {}, "'var/lib/x' is not absolute"),
        (["/var/lib/x", ""], {}, "'' is not absolute"),
        (["/var/my dir"], {}, "holds white space"),
        (["/"], {}, "would undo ProtectSystem=strict"),
        ("/var/lib/x", {}, "must be a list of absolute paths"),
        ([5], {}, "5 is not a string"),
        ([], {"address_families": ["AF_INET", "AF_BLUETOOTH"]}, "unknown address family 'AF_BLUETOOTH'"),
        ([], {"address_families": ["af_unix"]}, "unknown address family 'af_unix'"),
        ([], {"address_families": "AF_UNIX"}, "address_families must be a list"),
        ([], {"address_families": ["AF_INET"]}, "AF_INET need a network: set private_network=false"),
        ([], {"address_families": ["AF_INET6", "AF_PACKET"], "private_network": True}, "AF_INET6, AF_PACKET need"),
        ([], {"private_network": "no"}, "private_network must be true or false"),
        ([], {"remove_ipc": 1}, "remove_ipc must be true or false"),
        ([], {"memory_deny_write_execute": None}, "memory_deny_write_execute must be true or false"),
        ([], {"capabilities": "CAP_DAC_READ_SEARCH"}, "capabilities must be a list"),
        ([], {"capabilities": ["cap_chown"]}, "'cap_chown' is not a capability name"),
    ],
)
def test_bad_input(paths, kwargs, message):
    with pytest.raises(AnsibleFilterError, match="systemd_hardening: ") as error:
        systemd_hardening(paths, **kwargs)
    assert message in str(error.value)


def test_capabilities_are_the_one_bounding_set():
    # A second CapabilityBoundingSet= line in the unit would leave the unit none (systemd ANDs them).
    lines = systemd_hardening(["/srv/x"], capabilities=["CAP_DAC_READ_SEARCH", "CAP_DAC_READ_SEARCH"]).splitlines()
    assert [line for line in lines if line.startswith("CapabilityBoundingSet=")] == [
        "CapabilityBoundingSet=CAP_DAC_READ_SEARCH"
    ]
    assert "CapabilityBoundingSet=" in systemd_hardening(["/srv/x"]).splitlines()
