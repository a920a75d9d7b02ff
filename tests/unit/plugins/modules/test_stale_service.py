"""stale_service: when a unit counts as behind its files, from `systemctl show` and real mtimes.

systemctl is replaced by a fake run_command that answers with a recorded `show` output (the
shape systemd 252 prints, taken from a Debian bookworm host); the files are real, with mtimes
set around the unit's start and reload times.
"""

from __future__ import annotations

import os
import time

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlops.mlflow.plugins.modules import stale_service as m

NOW_MONO = 50_000.0  # seconds since boot, "now"
NOW_WALL = 1_800_000_000.0
STARTED = NOW_WALL - 600  # started 10 minutes ago
RELOAD = (
    "{ path=/usr/sbin/nginx ; argv[]=/usr/sbin/nginx -g daemon on; master_process on; -s reload ; "
    "ignore_errors=no ; start_time=[%s] ; stop_time=[%s] ; pid=2927 ; code=exited ; status=%d }"
)


def stamp(epoch: float) -> str:
    return time.strftime("%a %Y-%m-%d %H:%M:%S", time.gmtime(epoch)) + f".{round((epoch % 1) * 1e6):06d} UTC"


# What systemd 252 shows of ExecReload= after a daemon-reload: the command, no status.
FORGOTTEN = (
    "{ path=/usr/sbin/nginx ; argv[]=/usr/sbin/nginx -g daemon on; master_process on; -s reload ; "
    "ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }"
)


def _mono(epoch: float) -> int:
    return round((NOW_MONO - (NOW_WALL - epoch)) * 1e6)


def show(
    unit_file: str,
    *,
    active="active",
    need_reload="no",
    started=STARTED,
    reloads=(),
    dropins="",
    forgotten_at=None,
    reload_result="success",
) -> str:
    """`forgotten_at`: a daemon-reload came after a reload that ended then (ExecReload= shows no status)."""
    mono = 0 if started is None else _mono(started)
    exec_reload = " ".join(RELOAD % (stamp(t), stamp(t + 0.01), status) for t, status in reloads)
    if forgotten_at is not None:
        exec_reload = FORGOTTEN
    state_change = forgotten_at if forgotten_at is not None else max([started or 0] + [t + 0.01 for t, _ in reloads])
    return (
        f"LoadState=loaded\nActiveState={active}\nNeedDaemonReload={need_reload}\n"
        f"InactiveExitTimestampMonotonic={mono}\nFragmentPath={unit_file}\nDropInPaths={dropins}\n"
        f"ExecReload={exec_reload}\nReloadResult={reload_result}\n"
        f"StateChangeTimestampMonotonic={_mono(state_change) if state_change else 0}\n"
    )


def touch(path, epoch: float):
    path.write_text("x")
    os.utime(path, (epoch, epoch))
    return str(path)


@pytest.fixture
def files(tmp_path):
    """A unit file, an env file and a config file, all last written before the start."""
    return {
        name: touch(tmp_path / name, STARTED - 60) for name in ("unit.service", "app.env", "app.conf", "dropin.conf")
    }


@pytest.fixture
def systemd(monkeypatch):
    """Answer `systemctl show` with whatever the test sets; record the commands and clocks."""
    state = {"show": "", "calls": []}

    def run_command(self, args, environ_update=None, **_kwargs):
        state["calls"].append((list(args), dict(environ_update or {})))
        return 0, state["show"], ""

    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, required=False: "/usr/bin/" + name)
    monkeypatch.setattr(m.time, "time", lambda: NOW_WALL)
    monkeypatch.setattr(m.time, "clock_gettime", lambda _clock: NOW_MONO)
    return state


def assess(module_main, systemd, check=False, **args):
    args.setdefault("name", "app")
    return module_main(m.main, args, check=check)


def test_nothing_changed_since_the_start(module_main, systemd, files):
    systemd["show"] = show(files["unit.service"])
    result = assess(module_main, systemd, restart_paths=[files["app.env"]], reload_paths=[files["app.conf"]])
    assert result["changed"] is False
    assert (result["restart"], result["reload"], result["daemon_reload"]) == (False, False, False)
    assert result["started"] == pytest.approx(STARTED, abs=1e-3)
    assert result["reloaded"] is None and result["newer"] == []
    argv, env = systemd["calls"][0]
    assert argv[:3] == ["/usr/bin/systemctl", "show", "app.service"] and "--timestamp=us+utc" in argv
    assert env == {"LC_ALL": "C", "TZ": "UTC"}


def test_restart_input_written_after_the_start(module_main, systemd, files):
    systemd["show"] = show(files["unit.service"])
    os.utime(files["app.env"], (STARTED + 5, STARTED + 5))
    result = assess(module_main, systemd, restart_paths=[files["app.env"]], reload_paths=[files["app.conf"]])
    assert (result["restart"], result["reload"]) == (True, False)
    assert result["newer"] == [files["app.env"]]


def test_a_file_written_just_before_the_start_is_not_stale(module_main, systemd, files):
    """A normal run: the template writes, the handler restarts a moment later."""
    systemd["show"] = show(files["unit.service"])
    os.utime(files["app.env"], (STARTED - 0.001, STARTED - 0.001))
    assert assess(module_main, systemd, restart_paths=[files["app.env"]])["restart"] is False


def test_unit_file_and_drop_ins_count_as_restart_inputs(module_main, systemd, files):
    """Killed after daemon-reload, before the restart: systemd is on the new unit, the process is not."""
    os.utime(files["dropin.conf"], (STARTED + 1, STARTED + 1))
    systemd["show"] = show(files["unit.service"], dropins=files["dropin.conf"])
    result = assess(module_main, systemd)
    assert (result["restart"], result["daemon_reload"], result["newer"]) == (True, False, [files["dropin.conf"]])


def test_unloaded_unit_file_asks_for_daemon_reload_and_restart(module_main, systemd, files):
    systemd["show"] = show(files["unit.service"], need_reload="yes")
    result = assess(module_main, systemd)
    assert (result["daemon_reload"], result["restart"]) == (True, True)


def test_reload_input_newer_than_start_and_last_reload(module_main, systemd, files):
    systemd["show"] = show(files["unit.service"], reloads=[(STARTED + 100, 0)])
    os.utime(files["app.conf"], (STARTED + 200, STARTED + 200))
    result = assess(module_main, systemd, reload_paths=[files["app.conf"]])
    assert (result["restart"], result["reload"]) == (False, True)
    assert result["reloaded"] == pytest.approx(STARTED + 100, abs=1e-3)
    assert result["newer"] == [files["app.conf"]]


def test_a_later_reload_picked_the_file_up(module_main, systemd, files):
    os.utime(files["app.conf"], (STARTED + 100.2, STARTED + 100.2))
    systemd["show"] = show(files["unit.service"], reloads=[(STARTED + 100.4, 0)])
    assert assess(module_main, systemd, reload_paths=[files["app.conf"]])["reload"] is False


def test_a_failed_reload_does_not_count(module_main, systemd, files):
    """nginx -s reload exiting 1 (a broken config) loaded nothing."""
    os.utime(files["app.conf"], (STARTED + 50, STARTED + 50))
    systemd["show"] = show(files["unit.service"], reloads=[(STARTED + 100, 1)])
    result = assess(module_main, systemd, reload_paths=[files["app.conf"]])
    assert (result["reload"], result["reloaded"]) == (True, None)


def test_a_reload_systemd_forgot_on_daemon_reload_still_counts(module_main, systemd, files):
    """Reloaded by the handler, then a package install ran daemon-reload: the site is loaded."""
    os.utime(files["app.conf"], (STARTED + 100, STARTED + 100))
    systemd["show"] = show(files["unit.service"], forgotten_at=STARTED + 100.5)
    result = assess(module_main, systemd, reload_paths=[files["app.conf"]])
    assert (result["reload"], result["newer"]) == (False, [])
    assert result["reloaded"] == pytest.approx(STARTED + 100.5, abs=1e-3)


def test_a_file_written_after_the_forgotten_reload_is_stale(module_main, systemd, files):
    os.utime(files["app.conf"], (STARTED + 200, STARTED + 200))
    systemd["show"] = show(files["unit.service"], forgotten_at=STARTED + 100.5)
    assert assess(module_main, systemd, reload_paths=[files["app.conf"]])["reload"] is True


def test_a_forgotten_reload_that_failed_does_not_count(module_main, systemd, files):
    os.utime(files["app.conf"], (STARTED + 100, STARTED + 100))
    systemd["show"] = show(files["unit.service"], forgotten_at=STARTED + 100.5, reload_result="exit-code")
    result = assess(module_main, systemd, reload_paths=[files["app.conf"]])
    assert (result["reload"], result["reloaded"]) == (True, None)


def test_restart_wins_over_reload(module_main, systemd, files):
    systemd["show"] = show(files["unit.service"])
    for name in ("app.env", "app.conf"):
        os.utime(files[name], (STARTED + 5, STARTED + 5))
    result = assess(module_main, systemd, restart_paths=[files["app.env"]], reload_paths=[files["app.conf"]])
    assert (result["restart"], result["reload"]) == (True, False)
    assert sorted(result["newer"]) == sorted([files["app.env"], files["app.conf"]])


def test_a_link_counts_when_it_or_its_target_changed(module_main, systemd, files, tmp_path):
    link = tmp_path / "enabled.conf"
    link.symlink_to(files["app.conf"])
    os.utime(link, (STARTED - 60, STARTED - 60), follow_symlinks=False)
    systemd["show"] = show(files["unit.service"])
    assert assess(module_main, systemd, reload_paths=[str(link)])["reload"] is False
    os.utime(link, (STARTED + 5, STARTED + 5), follow_symlinks=False)  # the link was (re)made after the start
    assert assess(module_main, systemd, reload_paths=[str(link)])["reload"] is True
    os.utime(link, (STARTED - 60, STARTED - 60), follow_symlinks=False)
    os.utime(files["app.conf"], (STARTED + 5, STARTED + 5))  # the file behind it changed
    assert assess(module_main, systemd, reload_paths=[str(link)])["reload"] is True


def test_absent_files_count_as_never_changed(module_main, systemd, files, tmp_path):
    systemd["show"] = show(files["unit.service"])
    result = assess(module_main, systemd, restart_paths=[str(tmp_path / "gone")], reload_paths=[str(tmp_path / "x")])
    assert (result["restart"], result["reload"], result["newer"]) == (False, False, [])


@pytest.mark.parametrize("active", ["inactive", "failed", "activating"])
def test_a_unit_that_is_not_running_is_left_to_the_start_task(module_main, systemd, files, active):
    systemd["show"] = show(files["unit.service"], active=active, need_reload="yes")
    os.utime(files["app.env"], (STARTED + 5, STARTED + 5))
    result = assess(module_main, systemd, restart_paths=[files["app.env"]])
    assert (result["active"], result["restart"], result["reload"]) == (False, False, False)
    assert result["daemon_reload"] is True


def test_a_unit_systemd_does_not_know(module_main, systemd):
    systemd["show"] = (
        "LoadState=not-found\nActiveState=inactive\nNeedDaemonReload=no\nInactiveExitTimestampMonotonic=0\n"
    )
    result = assess(module_main, systemd, name="postgresql@15-main")
    assert systemd["calls"][0][0][2] == "postgresql@15-main.service"
    assert (result["loaded"], result["restart"], result["reload"], result["daemon_reload"]) == (False,) * 4
    assert result["started"] is None


def test_check_mode_reports_the_same(module_main, systemd, files):
    systemd["show"] = show(files["unit.service"])
    os.utime(files["app.env"], (STARTED + 5, STARTED + 5))
    result = assess(module_main, systemd, check=True, restart_paths=[files["app.env"]])
    assert (result["changed"], result["restart"]) == (False, True)


def test_systemctl_failure_is_reported(module_main, monkeypatch):
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, required=False: "/usr/bin/" + name)
    monkeypatch.setattr(AnsibleModule, "run_command", lambda self, args, **kw: (1, "", "Failed to connect to bus"))
    result = module_main(m.main, {"name": "app"})
    assert result["failed"] and "Failed to connect to bus" in result["msg"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mon 2026-11-23 16:25:06.027888 UTC", 1795451106.027888),
        ("Mon 2026-11-23 16:25:06 UTC", 1795451106.0),
        ("n/a", None),
        ("", None),
    ],
)
def test_parse_timestamp(text, expected):
    value = m.parse_timestamp(text)
    assert value == (pytest.approx(expected, abs=1e-6) if expected else None)


def test_unreadable_timestamp_is_an_error():
    with pytest.raises(m.StaleServiceError, match="cannot read"):
        m.parse_timestamp("yesterday at noon")


@pytest.mark.parametrize(
    ("name", "unit"), [("nginx", "nginx.service"), ("x.service", "x.service"), ("backup.timer", "backup.timer")]
)
def test_unit_name(name, unit):
    assert m.unit_name(name) == unit
