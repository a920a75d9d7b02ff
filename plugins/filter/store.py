# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)
"""Store URIs built from their parts, percent-encoded once, here (not in Jinja)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: store_uri
author: mlops.mlflow contributors
version_added: "0.1.0"
short_description: The SQLAlchemy URI of an mlflow backend store
description:
  - Builds C(sqlite:////path), C(postgresql+psycopg2://user:password@host:port/database?options) or
    C(mysql+pymysql://...) from its parts, as SQLAlchemy and mlflow parse it.
  - The user name and password are percent-encoded whole (C(/), C(@), C(:) included); each option
    value is percent-encoded, so a space, C(&), C(=) or C(+) in it reaches the driver as written.
    An IPv6 host is put in brackets.
  - The input is the backend (C(sqlite), C(postgresql), C(mysql)) or a dialect with its driver
    (C(postgresql+psycopg2)). A backend without a driver gets the one the collection installs.
  - Related filters in this file are C(mlops.mlflow.url_userinfo) (C(user:password) percent-encoded
    for any URL) and C(mlops.mlflow.with_driver) (C(postgresql://) to C(postgresql+psycopg2://)).
options:
  _input:
    description: The backend, or a dialect with its driver.
    type: str
    required: true
  path:
    description: The absolute path of the SQLite file (sqlite only).
    type: str
  user:
    description: The database user.
    type: str
  password:
    description: The database password.
    type: str
  host:
    description: The database host name or address.
    type: str
  port:
    description: The database port; empty for the backend's default (5432, 3306).
    type: raw
  database:
    description: The database name.
    type: str
  options:
    description: Query parameters (names are letters, digits and underscores; single values).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Write the backend store URI
  ansible.builtin.copy:
    dest: /etc/mlflow/store.env
    content: >-
      MLFLOW_BACKEND_STORE_URI='{{ 'postgresql' | mlops.mlflow.store_uri(user='mlflow',
      password=vault_db_password, host='10.0.0.11', database='mlflow', options={'sslmode': 'require'}) }}'
    mode: "0600"
  no_log: true
"""

RETURN = r"""
_value:
  description: The URI.
  type: str
"""

import re

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2
    from urllib import quote

from ansible.errors import AnsibleFilterError

# The SQLAlchemy driver the collection installs for each backend (SQLAlchemy 2.1's default for
# postgresql:// is psycopg 3, which the venv does not have).
DRIVERS = {"postgresql": "postgresql+psycopg2", "mysql": "mysql+pymysql"}
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
_OPTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _text(value):
    return "" if value is None else value if isinstance(value, str) else str(value)


def percent_encode(value, safe=""):
    """Percent-encode value as Jinja's urlencode does (UTF-8), leaving only the characters in safe."""
    return quote(_text(value).encode("utf-8"), safe=safe)


def url_userinfo(user, password):
    """user:password for a URL's authority, each percent-encoded whole (/ @ : included)."""
    return "%s:%s" % (percent_encode(user), percent_encode(password))


def with_driver(uri):
    """The URI with the collection's driver when it names none: postgresql:// -> postgresql+psycopg2://."""
    scheme, sep, rest = _text(uri).partition("://")
    if sep and scheme in DRIVERS:
        return DRIVERS[scheme] + sep + rest
    return _text(uri)


def _host(host):
    host = _text(host)
    return "[%s]" % host if ":" in host and not host.startswith("[") else host


def _query(options):
    if not options:
        return ""
    if not isinstance(options, dict):
        raise AnsibleFilterError("store_uri: options must be a mapping, got %r" % (type(options).__name__,))
    parts = []
    for name, value in options.items():
        if not _OPTION_NAME.match(_text(name)):
            raise AnsibleFilterError("store_uri: option name %r is not letters, digits and underscores" % (name,))
        if isinstance(value, (list, tuple, dict, set)):
            raise AnsibleFilterError("store_uri: option %s must be a single value" % (name,))
        # Jinja's urlencode keeps '/' in a path; the driver reads it the same either way.
        parts.append("%s=%s" % (name, percent_encode(value, safe="/")))
    return "?" + "&".join(parts)


def store_uri(backend, path=None, user=None, password=None, host=None, port=None, database=None, options=None):
    """The SQLAlchemy URI of a backend store, from its parts (see DOCUMENTATION)."""
    backend = _text(backend)
    kind = backend.split("+", 1)[0]
    if kind == "sqlite":
        path = _text(path)
        if not path.startswith("/"):
            raise AnsibleFilterError("store_uri: the SQLite path must be absolute, got %r" % (path,))
        return "sqlite:///" + path
    if kind not in DRIVERS:
        raise AnsibleFilterError(
            "store_uri: unknown backend %r (one of sqlite, %s)" % (backend, ", ".join(sorted(DRIVERS)))
        )
    if not _text(host):
        raise AnsibleFilterError("store_uri: a %s store needs a host" % (kind,))
    return "%s://%s@%s:%s/%s%s" % (
        DRIVERS[kind] if "+" not in backend else backend,
        url_userinfo(user, password),
        _host(host),
        _text(port) or DEFAULT_PORTS[kind],
        _text(database),
        _query(options),
    )


class FilterModule(object):
    def filters(self):
        return {
            "store_uri": store_uri,
            "url_userinfo": url_userinfo,
            "with_driver": with_driver,
        }
