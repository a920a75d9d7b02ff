"""calendar_interval: the longest gap between two elapses of the OnCalendar= forms the roles use."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.mlops.mlflow.plugins.filter.calendar import FilterModule, calendar_interval

DAY = 86400


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        # The roles' defaults.
        ("Sun *-*-* 02:30:00", 7 * DAY),  # postgres_pgbackrest_full_on_calendar
        ("Mon..Sat *-*-* 02:30:00", 2 * DAY),  # postgres_pgbackrest_diff_on_calendar: Saturday to Monday
        ("*-*-* 03:15:00", DAY),  # postgres_backup_on_calendar, mlflow_server_sqlite_backup_on_calendar
        # Shorthands, any case.
        ("minutely", 60),
        ("hourly", 3600),
        ("Daily", DAY),
        ("weekly", 7 * DAY),
        ("monthly", 31 * DAY),
        # Time fields: any value, lists, steps; seconds optional.
        ("*-*-* *:07:00", 3600),
        ("*-*-* 00/6:20:00", 6 * 3600),
        ("*-*-* 1,13:00", 12 * 3600),
        ("*-*-* 2,3:00:00", 23 * 3600),
        ("*-*-* 04:00/15:00", 15 * 60 + (24 - 1) * 3600),  # 04:00..04:45, then the next day at 04:00
        # Weekdays: lists, ranges, full names, a range across the week's end.
        ("Mon,Wed *-*-* 01:00:00", 5 * DAY),
        ("Monday..Friday *-*-* 01:00:00", 3 * DAY),
        ("Mon,Fri..Sun *-*-* 01:00", 4 * DAY),
        # Extra white space, and a time zone.
        ("  Sun   *-*-*  02:30:00 ", 7 * DAY),
        ("*-*-* 03:15:00 UTC", DAY),
        ("Sun *-*-* 02:30:00 Europe/Berlin", 7 * DAY),
        # The date left out, as systemd allows ("Sun 02:30" is "Sun *-*-* 02:30:00").
        ("Sun 02:30", 7 * DAY),
        ("03:15", DAY),
        ("Mon..Fri 01:00:00 UTC", 3 * DAY),
    ],
)
def test_interval(expression, seconds):
    assert calendar_interval(expression) == seconds


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("2026-12-01 03:00:00", "only shorthands"),
        ("*-*-01 03:00:00", "only shorthands"),
        ("*-*-* 03:00:00.5", "only shorthands"),
        ("Mo *-*-* 01:00", "weekday 'mo'"),
        ("Mon..Wed..Fri *-*-* 01:00", "weekday 'mon..wed..fri'"),
        ("Mond *-*-* 01:00", "weekday 'mond'"),
        ("Fri..Mon *-*-* 01:00", "weekday range 'fri..mon'"),
        ("*-*-* 24:00", "time field '24'"),
        ("*-*-* 01:60", "time field '60'"),
        ("*-*-* 01/0:00", "time field '01/0'"),
        ("", "only shorthands"),
    ],
)
def test_unread_forms_fail_naming_the_expression(expression, why):
    with pytest.raises(AnsibleFilterError, match="cannot tell the interval of") as error:
        calendar_interval(expression)
    assert repr(expression) in str(error.value) and why in str(error.value)


def test_not_a_string():
    with pytest.raises(AnsibleFilterError, match="is a string"):
        calendar_interval(86400)


def test_registered():
    assert FilterModule().filters()["calendar_interval"] is calendar_interval
