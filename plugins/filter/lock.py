# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)
"""Lay a small lock (an app's extra pins) over a complete pip lock."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: lock_overlay
short_description: Lay the pins of an overlay lock over a complete pip lock
version_added: 0.1.0
description:
  - Returns the base lock without the pins of packages the overlay pins, followed by the overlay's
    pins. Package names compare as PEP 503 normalised names (C(Flask_WTF) is C(flask-wtf)).
  - Comments and blank lines of the base are kept; the overlay's comments are dropped.
  - A line of either that is neither a comment nor a C(name==version) pin is refused, so an edit
    that pip would read differently never passes silently.
options:
  _input:
    description: The base lock's text (C(name==version) lines and comments).
    type: str
    required: true
  overlay:
    description: The overlay lock's text.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Write the lock of the OIDC mode
  ansible.builtin.copy:
    content: >-
      {{ lookup('ansible.builtin.file', 'mlflow-3.17.2.txt')
         | mlops.mlflow.lock_overlay(lookup('ansible.builtin.file', 'oidc-auth-10.2.0.txt')) }}
    dest: /opt/mlflow/constraints.txt
    mode: "0644"
"""

RETURN = r"""
_value:
  description: The merged lock, ending in a new line.
  type: str
"""

import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")


def _name(line, which):
    match = _PIN.match(line)
    if not match:
        raise AnsibleFilterError("lock_overlay: %s line %r is not a name==version pin" % (which, line))
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _pins(text, which):
    """(name, line) of each pin; None as the name for comments and blank lines."""
    out = []
    for raw in to_text(text).splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            out.append((None, raw))
        else:
            out.append((_name(line, which), line))
    return out


def lock_overlay(base, overlay):
    """The base lock without the overlay's packages, then the overlay's pins."""
    extra = [(name, line) for name, line in _pins(overlay, "overlay") if name]
    replaced = set(name for name, _pin in extra)
    if len(replaced) != len(extra):
        raise AnsibleFilterError("lock_overlay: the overlay pins a package twice")
    kept = [line for name, line in _pins(base, "base") if name not in replaced]
    return "\n".join(kept + [line for _pinned, line in extra]) + "\n"


class FilterModule(object):
    def filters(self):
        return {"lock_overlay": lock_overlay}
