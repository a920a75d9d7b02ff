# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)
"""Values for an environment file that both systemd and a POSIX shell read.

The mlflow server's env file is read by systemd (EnvironmentFile=, systemd.exec(5)) and, in cron and
container mode, by `set -a; . file` in /bin/sh. Both take a single-quoted value verbatim, up to the
next single quote; both take a double-quoted value with backslash escapes of \\ " $ and `. A value
without a single quote is written single-quoted (what the role always wrote); one with a single
quote double-quoted, with those four escaped.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: envfile_quote
short_description: Quote a value for an environment file read by systemd and /bin/sh
version_added: 0.1.0
description:
  - Returns the value quoted so that systemd's C(EnvironmentFile=) parser and a POSIX shell's C(.) both read
    exactly the value back, whatever it holds (quotes, C($), backslashes, new lines, C(%)).
  - Without a single quote in it the value is written single-quoted (both parsers take it verbatim);
    otherwise double-quoted, with C(\), C("), C($) and C(`) escaped by a backslash.
  - systemd expands no C($VAR) and no C(%) specifier in an environment file, and neither does the shell
    inside quotes once C($) and C(`) are escaped.
options:
  _input:
    description:
      - The value. Numbers and booleans are written as their string form.
      - A NUL character cannot be carried by an environment variable and is refused.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Write an env file line
  ansible.builtin.copy:
    content: "GREETING={{ \"it's $HOME\" | mlops.mlflow.envfile_quote }}\n"
    dest: /etc/example.env
    mode: "0640"
# GREETING="it's \$HOME"
"""

RETURN = r"""
_value:
  description: The quoted value, to follow C(NAME=) on a line of its own.
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

_DOUBLE_QUOTE_ESCAPED = ("\\", '"', "$", "`")


def envfile_quote(value):
    """The value quoted for an env file that systemd and /bin/sh both read back unchanged."""
    if value is None:
        value = ""
    text = to_text(value, errors="surrogate_or_strict")
    if "\0" in text:
        raise AnsibleFilterError("envfile_quote: an environment value cannot hold a NUL character")
    if "'" not in text:
        return "'%s'" % text
    for char in _DOUBLE_QUOTE_ESCAPED:
        text = text.replace(char, "\\" + char)
    return '"%s"' % text


class FilterModule(object):
    def filters(self):
        return {"envfile_quote": envfile_quote}
