#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: stale_service
short_description: Tell whether a systemd service runs from older files than the ones on disk
version_added: "0.1.0"
description:
  - A play killed between a configuration change and the handler that applies it leaves the service
    on the old configuration, and the next run finds nothing to change, so the handler never runs.
    This module finds that state from the disk and systemd alone, so a role can catch up.
  - It compares the modification time of each file the service reads with the time the service last
    read it. Files in O(restart_paths) (and the unit file and its drop-ins) are read at start; files in
    O(reload_paths) are read again on C(systemctl reload).
  - The start time is the unit's C(InactiveExitTimestampMonotonic), taken to today's wall clock, so a
    clock set after boot (a Raspberry Pi without RTC) does not confuse it. The reload time is the start
    time of the unit's last successful C(ExecReload=) command.
  - A C(systemctl daemon-reload) (any package install runs one) makes systemd forget its C(ExecReload=)
    status. Then, when C(ReloadResult) is still C(success), the unit's last state change
    (C(StateChangeTimestampMonotonic), when it came back to active after that reload) is the reload time.
  - Read-only. It never changes anything and always reports C(changed=false); the role acts on
    RV(restart), RV(reload) and RV(daemon_reload).
author:
  - mlops.mlflow maintainers (@mlops-mlflow)
options:
  name:
    description:
      - Name of the systemd unit. C(.service) is added when the name has no unit suffix.
    type: str
    required: true
  restart_paths:
    description:
      - Files the service reads only when it starts (environment files, binaries, configuration without reload support).
      - Absent files count as never changed. Symbolic links count as changed when the link or its target changed.
    type: list
    elements: path
    default: []
  reload_paths:
    description:
      - Files the service reads again on C(systemctl reload).
    type: list
    elements: path
    default: []
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads; it reports the same in check mode.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - A unit that is not active is never reported for a restart or reload; start it first.
  - A unit systemd does not know (a package not installed yet, as in check mode on a fresh host) is
    reported with RV(loaded=false) and nothing to do.
  - A reload run outside systemd (C(nginx -s reload)) is not seen; the next run reloads once more.
requirements:
  - systemd 248 or newer on the target (C(systemctl show --timestamp=us+utc))
"""

EXAMPLES = r"""
- name: Start the server
  ansible.builtin.systemd_service:
    name: myapp
    state: started

- name: Find out whether an interrupted run left the server behind its files
  mlops.mlflow.stale_service:
    name: myapp
    restart_paths:
      - /etc/myapp/myapp.env
      - /opt/myapp/bin/myapp
    reload_paths:
      - /etc/myapp/routes.conf
  register: myapp_stale

- name: Load a unit file an interrupted run left unloaded
  ansible.builtin.systemd_service:
    daemon_reload: true
  when: myapp_stale.daemon_reload

- name: Restart the server on the files on disk
  ansible.builtin.systemd_service:
    name: myapp
    state: restarted
  when: myapp_stale.restart

- name: Reload the server's routes
  ansible.builtin.systemd_service:
    name: myapp
    state: reloaded
  when: myapp_stale.reload
"""

RETURN = r"""
name:
  description: The unit the module read.
  returned: always
  type: str
  sample: myapp.service
loaded:
  description: Whether systemd knows the unit.
  returned: always
  type: bool
  sample: true
active:
  description: Whether the unit is active (running).
  returned: always
  type: bool
  sample: true
daemon_reload:
  description: Whether systemd has to re-read the unit file (C(NeedDaemonReload=yes)).
  returned: always
  type: bool
  sample: false
restart:
  description:
    - Whether the active service runs from an older unit or older O(restart_paths) than the ones on disk.
  returned: always
  type: bool
  sample: true
reload:
  description:
    - Whether an O(reload_paths) file changed after the service last started or reloaded.
    - Never true when RV(restart) is, since a restart reads those files too.
  returned: always
  type: bool
  sample: false
started:
  description: When the unit last started, in seconds since the epoch; null when it never did.
  returned: always
  type: float
  sample: 1795420800.123456
reloaded:
  description:
    - When the unit's last successful reload started, in seconds since the epoch; null when none.
    - After a daemon-reload, when it ended (the unit's last state change).
  returned: always
  type: float
  sample: 1795424400.5
newer:
  description: The files changed after the service last read them, newest first.
  returned: always
  type: list
  elements: str
  sample: [/etc/myapp/myapp.env]
"""

import os
import re
import time
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule

PROPERTIES = (
    "LoadState",
    "ActiveState",
    "NeedDaemonReload",
    "InactiveExitTimestampMonotonic",
    "FragmentPath",
    "DropInPaths",
    "ExecReload",
    "ReloadResult",
    "StateChangeTimestampMonotonic",
)
_EXEC_STATUS = re.compile(r"\{([^{}]*)\}")
_START_TIME = re.compile(r"start_time=\[([^\]]*)\]")
_STATUS = re.compile(r"\bstatus=(\d+)")
_SUFFIXES = (".service", ".socket", ".target", ".mount", ".timer", ".path", ".slice", ".scope", ".swap", ".device")


class StaleServiceError(Exception):
    pass


def unit_name(name):
    return name if name.endswith(_SUFFIXES) else name + ".service"


def parse_show(text):
    """`systemctl show` output (KEY=value lines) as a dict; values may contain '='."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def monotonic_to_wall(usec, now_wall, now_monotonic):
    """A CLOCK_MONOTONIC stamp in microseconds as today's wall clock (None for 0: never)."""
    usec = int(usec or 0)
    if usec <= 0:
        return None
    return now_wall - (now_monotonic - usec / 1e6)


def parse_timestamp(text):
    """'Mon 2026-11-23 10:12:13.123456 UTC' (systemctl --timestamp=us+utc) as epoch seconds."""
    text = text.strip()
    if not text or text == "n/a":
        return None
    stamp = re.sub(r"\s+UTC$", "", text)
    for pattern in ("%a %Y-%m-%d %H:%M:%S.%f", "%a %Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(stamp, pattern).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    raise StaleServiceError("cannot read the systemd timestamp %r" % text)


def last_reload(exec_reload):
    """Start of the newest ExecReload= command that exited with status 0, or None."""
    starts = []
    for status in _EXEC_STATUS.findall(exec_reload or ""):
        start, code = _START_TIME.search(status), _STATUS.search(status)
        if start and code and code.group(1) == "0" and "code=exited" in status:
            value = parse_timestamp(start.group(1))
            if value is not None:
                starts.append(value)
    return max(starts) if starts else None


def forgotten_reload(props, now_wall, now_monotonic):
    """After a daemon-reload, systemd shows no ExecReload= status any more (start_time=[n/a]), but the
    unit's last state change (back to active when a reload ended) and ReloadResult survive it: that
    change, when the last reload succeeded, or None."""
    if props.get("ActiveState") != "active" or props.get("ReloadResult") != "success":
        return None
    recorded = [
        start for start in _START_TIME.findall(props.get("ExecReload") or "") if start.strip() not in ("", "n/a")
    ]
    if recorded:
        return None  # systemd still knows the reloads: last_reload() reads them
    return monotonic_to_wall(props.get("StateChangeTimestampMonotonic"), now_wall, now_monotonic)


def changed_at(path):
    """Newest of a path's own mtime and its target's (for links); None when absent."""
    times = []
    for stat in (os.lstat, os.stat):
        try:
            times.append(stat(path).st_mtime)
        except OSError:
            continue
    return max(times) if times else None


def unit_files(props):
    files = [props.get("FragmentPath", "")]
    files.extend((props.get("DropInPaths") or "").split())
    return [path for path in files if path]


def newer_than(paths, since):
    """Paths changed after `since` (None: never read, so nothing counts), newest first."""
    if since is None:
        return []
    found = [(mtime, path) for path, mtime in ((p, changed_at(p)) for p in paths) if mtime and mtime > since]
    return [path for _mtime, path in sorted(found, reverse=True)]


def assess(props, restart_paths, reload_paths, now_wall, now_monotonic):
    loaded = props.get("LoadState") == "loaded"
    active = loaded and props.get("ActiveState") == "active"
    daemon_reload = props.get("NeedDaemonReload") == "yes"
    started = monotonic_to_wall(props.get("InactiveExitTimestampMonotonic"), now_wall, now_monotonic)
    reloaded = last_reload(props.get("ExecReload"))
    if reloaded is None:
        forgotten = forgotten_reload(props, now_wall, now_monotonic)
        reloaded = forgotten if forgotten is not None and started is not None and forgotten > started else None
    last_read = max([t for t in (started, reloaded) if t is not None], default=None)
    stale_start = newer_than(unit_files(props) + list(restart_paths), started)
    stale_reload = newer_than(reload_paths, last_read)
    restart = active and (daemon_reload or bool(stale_start))
    return {
        "loaded": loaded,
        "active": active,
        "daemon_reload": loaded and daemon_reload,
        "restart": restart,
        "reload": active and not restart and bool(stale_reload),
        "started": started,
        "reloaded": reloaded,
        "newer": stale_start + [path for path in stale_reload if path not in stale_start],
    }


def read_unit(module, name):
    systemctl = module.get_bin_path("systemctl", required=True)
    cmd = [systemctl, "show", name, "--timestamp=us+utc", "--property=" + ",".join(PROPERTIES)]
    rc, out, err = module.run_command(cmd, environ_update={"LC_ALL": "C", "TZ": "UTC"})
    if rc != 0:
        raise StaleServiceError("systemctl show %s failed (rc=%s): %s" % (name, rc, err.strip()))
    return parse_show(out)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            restart_paths=dict(type="list", elements="path", default=[]),
            reload_paths=dict(type="list", elements="path", default=[]),
        ),
        supports_check_mode=True,
    )
    name = unit_name(module.params["name"])
    try:
        props = read_unit(module, name)
        result = assess(
            props,
            module.params["restart_paths"],
            module.params["reload_paths"],
            time.time(),
            time.clock_gettime(time.CLOCK_MONOTONIC),
        )
    except StaleServiceError as exc:
        module.fail_json(msg="stale_service: %s" % exc, name=name)
    module.exit_json(changed=False, name=name, **result)


if __name__ == "__main__":
    main()
