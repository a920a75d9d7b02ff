# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)
"""The longest time between two elapses of a systemd OnCalendar= expression, for freshness checks.

A backup job's freshness is judged against its interval; the roles derive it from the timer's
own calendar instead of asking for a second, drifting variable. Only the forms the roles use are
read (the shorthands, and "[WEEKDAYS] [*-*-*] H:M[:S]" with fixed, listed or stepped time fields);
anything else is refused, so no interval is ever guessed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: calendar_interval
short_description: Longest time in seconds between two elapses of a systemd calendar expression
version_added: 0.1.0
description:
  - Returns the longest gap, in seconds, between two consecutive elapses of an C(OnCalendar=) expression
    (systemd.time(7)) over a week; C(Mon..Sat *-*-* 02:30:00) gives two days (Saturday to Monday).
  - Reads the shorthands C(minutely), C(hourly), C(daily), C(weekly) (and the longer ones, at their longest
    month or year), and C([WEEKDAYS] [*-*-*] H:M[:S] [ZONE]) (the date may be left out, as systemd allows)
    where WEEKDAYS is a comma list of days or day ranges
    (C(Mon..Fri), not across the week's end) and each time field is C(*), a number, a comma list, or
    C(start/step). A time zone moves the elapses, not the gaps (but for one hour at a daylight saving change).
  - Any other form (dates, C(~), sub-second times) fails with a message naming the expression.
options:
  _input:
    description: The C(OnCalendar=) expression.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Pass a job its interval
  ansible.builtin.debug:
    msg: "{{ 'Sun *-*-* 02:30:00' | mlops.mlflow.calendar_interval }}"  # 604800
"""

RETURN = r"""
_value:
  description: Seconds.
  type: int
"""

import re

from ansible.errors import AnsibleFilterError

_DAY = 86400
_WEEK = 7 * _DAY
_SHORTHANDS = {
    "minutely": 60,
    "hourly": 3600,
    "daily": _DAY,
    "weekly": _WEEK,
    "monthly": 31 * _DAY,
    "quarterly": 92 * _DAY,
    "semiannually": 184 * _DAY,
    "yearly": 366 * _DAY,
    "annually": 366 * _DAY,
}
_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_DAYS_FULL = dict(
    zip(_DAYS, ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"], strict=True)
)
_FORM = re.compile(
    r"^(?:(?P<days>[A-Za-z.,]+)\s+)?(?:\*-\*-\*\s+)?(?P<time>[0-9*/,]+:[0-9*/,]+(?::[0-9*/,]+)?)(?:\s+(?P<zone>[A-Za-z_/+-]+))?$"
)


def _error(expression, why):
    return AnsibleFilterError("calendar_interval: cannot tell the interval of %r (%s)" % (expression, why))


def _weekdays(expression, text):
    days = set()
    for part in text.lower().split(","):
        ends = part.split("..")
        if len(ends) > 2 or any(end not in (end[:3], _DAYS_FULL.get(end[:3])) or end[:3] not in _DAYS for end in ends):
            raise _error(expression, "weekday %r" % part)
        first, last = _DAYS.index(ends[0][:3]), _DAYS.index(ends[-1][:3])
        if first > last:  # systemd refuses a range across the week's end too
            raise _error(expression, "weekday range %r" % part)
        days.update(range(first, last + 1))
    return days


def _values(expression, text, limit):
    values = set()
    for part in text.split(","):
        if part == "*":
            values.update(range(limit))
            continue
        match = re.match(r"^(\d+)(?:/(\d+))?$", part)
        if not match or int(match.group(1)) >= limit or (match.group(2) is not None and int(match.group(2)) == 0):
            raise _error(expression, "time field %r" % part)
        start = int(match.group(1))
        values.update(range(start, limit, int(match.group(2))) if match.group(2) else [start])
    return values


def calendar_interval(expression):
    """The longest time (seconds) between two consecutive elapses of expression, over a week."""
    if not isinstance(expression, str):
        raise AnsibleFilterError("calendar_interval: an OnCalendar= expression is a string, got %r" % (expression,))
    text = " ".join(expression.split())
    if text.lower() in _SHORTHANDS:
        return _SHORTHANDS[text.lower()]
    match = _FORM.match(text)
    if not match:
        raise _error(expression, "only shorthands and '[WEEKDAYS] [*-*-*] H:M[:S]' are read")
    days = _weekdays(expression, match.group("days")) if match.group("days") else set(range(7))
    fields = match.group("time").split(":")
    hours, minutes = _values(expression, fields[0], 24), _values(expression, fields[1], 60)
    seconds = _values(expression, fields[2], 60) if len(fields) == 3 else {0}
    times = sorted(
        day * _DAY + hour * 3600 + minute * 60 + second
        for day in days
        for hour in hours
        for minute in minutes
        for second in seconds
    )
    # The gap after the last elapse of the week runs to the first one of the next.
    return max(later - earlier for earlier, later in zip(times, times[1:] + [times[0] + _WEEK], strict=True))


class FilterModule(object):
    def filters(self):
        return {"calendar_interval": calendar_interval}
