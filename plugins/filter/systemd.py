# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)
"""The sandbox of every systemd unit the collection installs, written in one place.

Each unit template renders its [Service] hardening with mlops.mlflow.systemd_hardening, so a
directive added here reaches every unit, and a unit differs from the others only by the few
knobs it states: which socket families it opens, whether it has a network at all, whether it
may map writable code, whether its user's IPC objects go with it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: systemd_hardening
short_description: The sandbox directives of a systemd service unit
version_added: 0.1.0
description:
  - Renders the C([Service]) hardening directives every unit of the collection shares, one a line, for a unit
    template to include.
  - The defaults are the strictest sandbox; a unit loosens only what it needs, by name.
  - C(systemd-analyze security) scores a unit rendered with the defaults at most 2.0.
  - A system call outside the filter fails with C(EPERM) (C(SystemCallErrorNumber=EPERM)) rather than killing
    the process with C(SIGSYS), which leaves no message; SQLite run as root, for one, tries C(fchown) on its
    journal and goes on without it.
options:
  _input:
    description:
      - The paths the unit may write (C(ReadWritePaths=)); the rest of the file system is read-only.
      - Absolute paths without white space; duplicates are dropped, the order kept. An empty list writes no
        C(ReadWritePaths=) line.
    type: list
    elements: path
    required: true
  address_families:
    description:
      - The socket families the unit may open (C(RestrictAddressFamilies=)).
      - An empty list allows none (C(RestrictAddressFamilies=none)).
    type: list
    elements: str
    choices: [AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET]
    default: [AF_UNIX]
  private_network:
    description:
      - Give the unit a network namespace of its own with only a loopback device (C(PrivateNetwork=true)).
      - Must be false when O(address_families) holds C(AF_INET), C(AF_INET6) or C(AF_PACKET), or the unit
        would reach nobody.
    type: bool
    default: true
  memory_deny_write_execute:
    description:
      - Refuse memory both writable and executable (C(MemoryDenyWriteExecute=true)).
      - Set false for a program that generates code at run time (a JIT, some Python extensions).
    type: bool
    default: true
  remove_ipc:
    description:
      - Remove the IPC objects of the unit's user when the unit stops (C(RemoveIPC=true)).
      - Only for a unit that alone runs as its user. Never for a unit running as C(postgres), or sharing the
        user of a running server, whose shared memory and semaphores it would destroy.
    type: bool
    default: false
  capabilities:
    description:
      - The capabilities the unit keeps (C(CapabilityBoundingSet=)), for a unit running as root that needs one,
        such as C(CAP_DAC_READ_SEARCH) to read the files of other users. Empty keeps none.
      - Name them here rather than in a line of the unit's own, so that the unit has one C(CapabilityBoundingSet=)
        line, the one this filter writes.
    type: list
    elements: str
    default: []
author:
  - mlops.mlflow contributors
"""

EXAMPLES = r"""
# A job that reads a local socket, writes one directory, talks to nobody.
hardening: "{{ ['/var/backups/mlflow'] | mlops.mlflow.systemd_hardening }}"

# In a unit template, under [Service]: a network server alone under its user.
# {{ [object_store_data_dir] | mlops.mlflow.systemd_hardening(
#      address_families=['AF_UNIX', 'AF_INET', 'AF_INET6'], private_network=false, remove_ipc=true) }}
"""

RETURN = r"""
_value:
  description:
    - The directives, one a line, without a trailing newline.
  type: str
  sample: |-
    NoNewPrivileges=true
    ProtectSystem=strict
    ProtectHome=true
    ...
    SystemCallFilter=~@privileged
    SystemCallErrorNumber=EPERM
    PrivateNetwork=true
    ReadWritePaths=/var/backups/mlflow
"""

import re

from ansible.errors import AnsibleFilterError

# The families a unit of the collection may ask for. AF_NETLINK: Go's net package lists the host's
# interfaces over it; AF_PACKET: raw frames, for nothing the collection runs today but DHCP-like tools.
ADDRESS_FAMILIES = ("AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET")

# Families that make no sense inside a private network namespace (only lo there).
_NETWORK_FAMILIES = ("AF_INET", "AF_INET6", "AF_PACKET")

# What every unit gets, whatever its knobs.
_COMMON = (
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
)


def _flag(name, value):
    if not isinstance(value, bool):
        raise AnsibleFilterError("systemd_hardening: %s must be true or false, got %r" % (name, value))
    return value


def _paths(read_write_paths):
    if read_write_paths is None:
        return []
    if isinstance(read_write_paths, str) or not isinstance(read_write_paths, (list, tuple)):
        raise AnsibleFilterError(
            "systemd_hardening: its input must be a list of absolute paths, got %r" % (read_write_paths,)
        )
    paths = []
    for path in read_write_paths:
        if not isinstance(path, str):
            raise AnsibleFilterError("systemd_hardening: read-write path %r is not a string" % (path,))
        if not path.startswith("/"):
            raise AnsibleFilterError("systemd_hardening: read-write path %r is not absolute" % (path,))
        if any(char.isspace() for char in path):
            # systemd splits ReadWritePaths= at white space.
            raise AnsibleFilterError("systemd_hardening: read-write path %r holds white space" % (path,))
        path = path.rstrip("/") or "/"
        if path == "/":
            raise AnsibleFilterError("systemd_hardening: read-write path '/' would undo ProtectSystem=strict")
        if path not in paths:
            paths.append(path)
    return paths


_CAPABILITY = re.compile(r"^CAP_[A-Z_]+$")


def _capabilities(capabilities):
    if isinstance(capabilities, str) or not isinstance(capabilities, (list, tuple)):
        raise AnsibleFilterError("systemd_hardening: capabilities must be a list such as ['CAP_DAC_READ_SEARCH']")
    for capability in capabilities:
        if not isinstance(capability, str) or not _CAPABILITY.match(capability):
            raise AnsibleFilterError("systemd_hardening: %r is not a capability name (CAP_...)" % (capability,))
    return list(dict.fromkeys(capabilities))


def _families(address_families):
    if isinstance(address_families, str) or not isinstance(address_families, (list, tuple)):
        raise AnsibleFilterError(
            "systemd_hardening: address_families must be a list of %s, got %r"
            % (", ".join(ADDRESS_FAMILIES), address_families)
        )
    families = []
    for family in address_families:
        if family not in ADDRESS_FAMILIES:
            raise AnsibleFilterError(
                "systemd_hardening: unknown address family %r (known: %s)" % (family, ", ".join(ADDRESS_FAMILIES))
            )
        if family not in families:
            families.append(family)
    return families


def systemd_hardening(
    read_write_paths,
    address_families=("AF_UNIX",),
    private_network=True,
    memory_deny_write_execute=True,
    remove_ipc=False,
    capabilities=(),
):
    """The hardening directives of a unit's [Service] section, one a line (see DOCUMENTATION)."""
    paths = _paths(read_write_paths)
    families = _families(address_families)
    private_network = _flag("private_network", private_network)
    memory_deny_write_execute = _flag("memory_deny_write_execute", memory_deny_write_execute)
    remove_ipc = _flag("remove_ipc", remove_ipc)
    capabilities = _capabilities(capabilities)
    network = [family for family in families if family in _NETWORK_FAMILIES]
    if private_network and network:
        raise AnsibleFilterError(
            "systemd_hardening: address_families %s need a network: set private_network=false" % ", ".join(network)
        )

    lines = list(_COMMON)
    if memory_deny_write_execute:
        lines.append("MemoryDenyWriteExecute=true")
    if remove_ipc:
        lines.append("RemoveIPC=true")
    lines += [
        "CapabilityBoundingSet=%s" % " ".join(capabilities),
        "AmbientCapabilities=",
        "RestrictAddressFamilies=%s" % (" ".join(families) or "none"),
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged",
        # A call outside the filter fails with EPERM instead of killing the process with SIGSYS:
        # SQLite run as root tries fchown() on its journal and carries on without it.
        "SystemCallErrorNumber=EPERM",
    ]
    if private_network:
        lines.append("PrivateNetwork=true")
    if paths:
        lines.append("ReadWritePaths=%s" % " ".join(paths))
    return "\n".join(lines)


class FilterModule(object):
    def filters(self):
        return {"systemd_hardening": systemd_hardening}
