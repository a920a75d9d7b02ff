# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)
"""Read, change and render htpasswd files without rehashing what still verifies."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

try:
    from passlib import hash as passlib_hash

    HAS_PASSLIB = True
    PASSLIB_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised on hosts without passlib
    passlib_hash = None
    HAS_PASSLIB = False
    PASSLIB_IMPORT_ERROR = exc

# Cost parameter per scheme: (default, minimum, maximum). The defaults keep one verify
# around 2 ms, because nginx verifies on every request inside its event loop.
SCHEME_ROUNDS = {
    "sha512_crypt": (5000, 1000, 999999999),
    "sha256_crypt": (5000, 1000, 999999999),
    "bcrypt": (5, 4, 31),
    "apr_md5_crypt": (None, None, None),
}
SCHEMES = tuple(SCHEME_ROUNDS)

_SHA_CRYPT = re.compile(r"^\$(?P<id>[56])\$(?:rounds=(?P<rounds>\d+)\$)?[^$]*\$[^$]+$")
_BCRYPT = re.compile(r"^\$2[abxy]\$(?P<cost>\d{2})\$[./A-Za-z0-9]{53}$")
_APR1 = re.compile(r"^\$apr1\$[^$]+\$[^$]+$")


class HtpasswdError(Exception):
    """Invalid input or an htpasswd file that cannot be handled safely."""


class Entry:
    """One line of an htpasswd file: a user (name and hash) or a kept line (comment, blank)."""

    __slots__ = ("name", "hash", "raw")

    def __init__(self, name=None, hash_=None, raw=None):
        self.name = name
        self.hash = hash_
        self.raw = raw

    @property
    def is_user(self):
        return self.name is not None

    def render(self):
        return "%s:%s" % (self.name, self.hash) if self.is_user else self.raw


def parse(text):
    """Split htpasswd text into entries; fail on a malformed line, naming its number."""
    entries = []
    seen = set()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            entries.append(Entry(raw=line))
            continue
        name, sep, hashed = line.partition(":")
        if not sep or not name or not hashed or ":" in hashed or name != name.strip():
            raise HtpasswdError("line %d is not a 'name:hash' entry" % number)
        if name in seen:
            raise HtpasswdError("line %d repeats user %r" % (number, name))
        seen.add(name)
        entries.append(Entry(name=name, hash_=hashed))
    return entries


def render(entries, trailing_newline=True):
    text = "\n".join(entry.render() for entry in entries)
    return text + "\n" if entries and trailing_newline else text


def user_names(entries):
    return [entry.name for entry in entries if entry.is_user]


def identify(hashed):
    """Return (scheme, rounds) of a stored hash, or (None, None) for anything else."""
    match = _SHA_CRYPT.match(hashed)
    if match:
        scheme = "sha512_crypt" if match.group("id") == "6" else "sha256_crypt"
        return scheme, int(match.group("rounds") or 5000)
    match = _BCRYPT.match(hashed)
    if match:
        return "bcrypt", int(match.group("cost"))
    if _APR1.match(hashed):
        return "apr_md5_crypt", None
    return None, None


def validate(name, password, scheme, rounds, state):
    """Check module input; return the effective rounds for the scheme."""
    if not name or ":" in name or "\n" in name or "\r" in name or name != name.strip():
        raise HtpasswdError("name must be non-empty, without ':', newlines or surrounding spaces")
    if scheme not in SCHEME_ROUNDS:
        raise HtpasswdError("hash_scheme must be one of %s" % ", ".join(SCHEMES))
    if state != "present":
        return None
    if not password:
        raise HtpasswdError("password must not be empty")
    if "\n" in password or "\r" in password:
        raise HtpasswdError("password must not contain newlines")
    default, low, high = SCHEME_ROUNDS[scheme]
    if default is None:
        if rounds is not None:
            raise HtpasswdError("rounds does not apply to hash_scheme %s" % scheme)
        return None
    if rounds is None:
        return default
    if not low <= rounds <= high:
        raise HtpasswdError("rounds for %s must be between %d and %d" % (scheme, low, high))
    return rounds


def _handler(scheme, rounds):
    if scheme == "bcrypt":
        # $2y$ is read by both glibc/libxcrypt crypt() (nginx) and Apache's htpasswd.
        return passlib_hash.bcrypt.using(rounds=rounds, ident="2y")
    if scheme == "apr_md5_crypt":
        return passlib_hash.apr_md5_crypt
    return getattr(passlib_hash, scheme).using(rounds=rounds)


def make_hash(password, scheme, rounds):
    return _handler(scheme, rounds).hash(password)


def verifies(password, hashed, scheme, rounds):
    """True when `hashed` is of `scheme`/`rounds` and matches `password`."""
    if identify(hashed) != (scheme, rounds):
        return False
    try:
        return getattr(passlib_hash, scheme).verify(password, hashed)
    except ValueError:
        return False


def ensure_user(entries, name, password, scheme, rounds, update_password):
    """Add or update one user in place; return 'added', 'updated' or 'unchanged'."""
    for entry in entries:
        if entry.name == name:
            if update_password == "on_create" or verifies(password, entry.hash, scheme, rounds):
                return "unchanged"
            entry.hash = make_hash(password, scheme, rounds)
            return "updated"
    entries.append(Entry(name=name, hash_=make_hash(password, scheme, rounds)))
    return "added"


def remove_user(entries, name):
    """Remove one user in place; return 'removed' or 'unchanged'."""
    for index, entry in enumerate(entries):
        if entry.name == name:
            del entries[index]
            return "removed"
    return "unchanged"
