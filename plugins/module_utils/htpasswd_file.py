# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)
"""Read, change and render htpasswd files for nginx auth_basic, without rehashing what still verifies.

Nothing here talks to Ansible: errors are raised as HtpasswdError subclasses whose
messages never contain a password or a hash, and the module turns them into one failure.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    from passlib import hash as passlib_hash
    from passlib.exc import MissingBackendError

    HAS_PASSLIB = True
    PASSLIB_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised on hosts without passlib
    passlib_hash = None

    class MissingBackendError(Exception):
        """Stand-in so the except clauses below stay valid without passlib."""

    HAS_PASSLIB = False
    PASSLIB_IMPORT_ERROR = traceback.format_exc()

# Cost parameter per scheme: (default, minimum, maximum); None where the scheme has no cost.
# The defaults keep one verify near 2 ms, because nginx verifies on every request inside its
# event loop (numbers in the module documentation and bench/htpasswd_verify.py).
SCHEME_ROUNDS = {
    "sha512_crypt": (5000, 1000, 999999999),
    "sha256_crypt": (5000, 1000, 999999999),
    "bcrypt": (5, 4, 31),
    "apr_md5_crypt": (None, None, None),
}
SCHEMES = tuple(SCHEME_ROUNDS)
DEFAULT_SCHEME = "sha512_crypt"

# glibc/libxcrypt write no rounds= field for the default of 5000 rounds.
SHA_CRYPT_IMPLICIT_ROUNDS = 5000
# bcrypt reads only this many bytes of a password (and python-bcrypt >= 5 refuses more).
BCRYPT_MAX_PASSWORD_BYTES = 72
# $2y$ is what Apache's `htpasswd -B` writes; nginx (libxcrypt crypt()) and `htpasswd -v` both read it.
BCRYPT_IDENT = "2y"
# Relative verify cost (sha512_crypt at 5000 rounds = 1) above which the module warns.
SLOW_VERIFY_FACTOR = 10

_SHA_CRYPT = re.compile(r"^\$(?P<id>[56])\$(?:rounds=(?P<rounds>[0-9]+)\$)?[^$]*\$[./0-9A-Za-z]+$")
_BCRYPT = re.compile(r"^\$2[abxy]\$(?P<cost>[0-9]{2})\$[./A-Za-z0-9]{53}$")
_APR1 = re.compile(r"^\$apr1\$[^$]*\$[./0-9A-Za-z]+$")


class HtpasswdError(Exception):
    """Base of the errors this module_util raises; the message is safe to show."""


class InvalidInputError(HtpasswdError):
    """A module argument that cannot be used (name, password, rounds)."""


class MalformedFileError(HtpasswdError):
    """The existing file holds a line that is not a comment, a blank line or `name:hash`."""

    def __init__(self, line_number, reason):
        super(MalformedFileError, self).__init__("line %d %s" % (line_number, reason))
        self.line_number = line_number


class MissingLibraryError(HtpasswdError):
    """A Python library the module needs on the target is not installed."""

    def __init__(self, message, import_traceback=None):
        super(MissingLibraryError, self).__init__(message)
        self.import_traceback = import_traceback


class _Line:
    """One line of the file: a user (name, hash) or a kept line (comment, blank), with its own line end."""

    __slots__ = ("name", "hash", "raw", "eol")

    def __init__(self, name=None, hashed=None, raw=None, eol="\n"):
        self.name = name
        self.hash = hashed
        self.raw = raw
        self.eol = eol

    @property
    def is_user(self):
        return self.name is not None

    def render(self):
        body = "%s:%s" % (self.name, self.hash) if self.is_user else self.raw
        return body + self.eol


class HtpasswdFile:
    """The lines of an htpasswd file, kept verbatim except for the users that are changed."""

    def __init__(self, lines, newline="\n"):
        self.lines = lines
        self.newline = newline

    @classmethod
    def parse(cls, text):
        """Parse htpasswd text; raise MalformedFileError naming the first bad line."""
        lines = []
        first_line = {}
        newline = None
        parts = text.split("\n")
        for index, part in enumerate(parts):
            number = index + 1
            last = index == len(parts) - 1
            if last and part == "":
                break  # the text ended with a newline (or is empty)
            content, eol = part, ("" if last else "\n")
            if eol and content.endswith("\r"):
                content, eol = content[:-1], "\r\n"
            if eol and newline is None:
                newline = eol
            if "\r" in content or "\0" in content:
                # nginx ends a line at a carriage return too: it would read this line differently.
                raise MalformedFileError(number, "contains a carriage return or NUL character inside the line")
            stripped = content.strip()
            if not stripped or stripped.startswith("#"):
                lines.append(_Line(raw=content, eol=eol))
                continue
            name, sep, hashed = content.partition(":")
            if not sep or not name or not hashed or ":" in hashed:
                raise MalformedFileError(number, "is not a 'name:hash' entry (one ':' between a name and a hash)")
            if name in first_line:
                raise MalformedFileError(number, "repeats user %r (first on line %d)" % (name, first_line[name]))
            first_line[name] = number
            lines.append(_Line(name=name, hashed=hashed, eol=eol))
        return cls(lines, newline or "\n")

    def render(self):
        return "".join(line.render() for line in self.lines)

    def users(self):
        return [line.name for line in self.lines if line.is_user]

    def get_hash(self, name):
        for line in self.lines:
            if line.name == name:
                return line.hash
        return None

    def set_hash(self, name, hashed):
        """Replace the hash of an existing user in place, or append the user at the end."""
        for line in self.lines:
            if line.name == name:
                line.hash = hashed
                return
        if self.lines and not self.lines[-1].eol:
            # The file ends without a newline: keep it that way, after the new last line.
            self.lines[-1].eol = self.newline
            self.lines.append(_Line(name=name, hashed=hashed, eol=""))
        else:
            self.lines.append(_Line(name=name, hashed=hashed, eol=self.newline))

    def remove(self, name):
        """Remove one user; return True when it was there."""
        for index, line in enumerate(self.lines):
            if line.name == name:
                del self.lines[index]
                if not line.eol and self.lines:
                    self.lines[-1].eol = ""
                return True
        return False

    def listing(self, marks=None):
        """Text for a diff: one `name (scheme)` per user, never a hash; `marks` adds a note per name."""
        marks = marks or {}
        out = []
        for line in self.lines:
            if line.is_user:
                note = " [%s]" % marks[line.name] if line.name in marks else ""
                out.append("%s (%s)%s\n" % (line.name, describe(line.hash), note))
        return "".join(out)


def identify(hashed):
    """Return (scheme, rounds) of a stored hash; rounds is None for apr_md5_crypt, (None, None) if unknown."""
    match = _SHA_CRYPT.match(hashed)
    if match:
        scheme = "sha512_crypt" if match.group("id") == "6" else "sha256_crypt"
        return scheme, int(match.group("rounds") or SHA_CRYPT_IMPLICIT_ROUNDS)
    match = _BCRYPT.match(hashed)
    if match:
        return "bcrypt", int(match.group("cost"))
    if _APR1.match(hashed):
        return "apr_md5_crypt", None
    return None, None


def describe(hashed):
    """A hash's scheme and cost in words, for diffs (never any of the hash itself)."""
    scheme, rounds = identify(hashed)
    if scheme is None:
        return "other scheme"
    if scheme == "bcrypt":
        return "bcrypt, cost %d" % rounds
    if rounds is None:
        return scheme
    return "%s, %d rounds" % (scheme, rounds)


def validate_name(name):
    if not name:
        raise InvalidInputError("name must not be empty")
    if ":" in name or "\n" in name or "\r" in name or "\0" in name:
        raise InvalidInputError("name must not contain ':', a newline, a carriage return or NUL")
    if name != name.strip():
        raise InvalidInputError("name must not start or end with whitespace")
    if name.startswith("#"):
        raise InvalidInputError("name must not start with '#' (the line would be a comment)")


def resolve_rounds(scheme, rounds):
    """Check `rounds` against the scheme; return the effective value (the scheme's default when None)."""
    if scheme not in SCHEME_ROUNDS:
        raise InvalidInputError("hash_scheme must be one of %s, not %r" % (", ".join(SCHEMES), scheme))
    default, low, high = SCHEME_ROUNDS[scheme]
    if default is None:
        if rounds is not None:
            raise InvalidInputError("rounds does not apply to hash_scheme=%s (its cost is fixed); omit it" % scheme)
        return None
    if rounds is None:
        return default
    if not low <= rounds <= high:
        what = "log2 cost" if scheme == "bcrypt" else "rounds"
        raise InvalidInputError(
            "rounds (the %s) for hash_scheme=%s must be between %d and %d, not %d" % (what, scheme, low, high, rounds)
        )
    return rounds


def validate_password(password, scheme):
    if password is None or password == "":
        raise InvalidInputError("password must be set and not empty when state=present")
    if "\0" in password:
        raise InvalidInputError("password must not contain a NUL character (crypt() stops at it)")
    if scheme == "bcrypt" and len(password.encode("utf-8")) > BCRYPT_MAX_PASSWORD_BYTES:
        raise InvalidInputError(
            "bcrypt uses at most %d bytes of a password; use a shorter password or hash_scheme=sha512_crypt"
            % BCRYPT_MAX_PASSWORD_BYTES
        )


def verify_cost_factor(scheme, rounds):
    """Rough verify cost relative to sha512_crypt at 5000 rounds (the default), from the measured table."""
    if rounds is None:
        return 0.2
    if scheme == "bcrypt":
        return 2.0 ** (rounds - 5)
    return rounds / float(SHA_CRYPT_IMPLICIT_ROUNDS)


def require_passlib():
    if not HAS_PASSLIB:
        raise MissingLibraryError(missing_required_lib("passlib"), PASSLIB_IMPORT_ERROR)


def _handler(scheme, rounds):
    require_passlib()
    if scheme == "bcrypt":
        return passlib_hash.bcrypt.using(rounds=rounds, ident=BCRYPT_IDENT)
    if scheme == "apr_md5_crypt":
        return passlib_hash.apr_md5_crypt
    return getattr(passlib_hash, scheme).using(rounds=rounds)


def _missing_backend(scheme):
    return MissingLibraryError(
        "%s (passlib has no backend for %s)" % (missing_required_lib("bcrypt"), scheme), traceback.format_exc()
    )


def make_hash(password, scheme, rounds):
    """Hash `password`; library errors become HtpasswdError without the password in them."""
    handler = _handler(scheme, rounds)
    try:
        return handler.hash(password)
    except MissingBackendError as exc:
        raise _missing_backend(scheme) from exc
    except ValueError as exc:
        # Only the exception type, and no chaining: some libraries quote the offending value.
        raise InvalidInputError("cannot hash the password with %s (%s)" % (scheme, type(exc).__name__)) from None


def verifies(password, hashed, scheme, rounds):
    """True when `hashed` is of `scheme` with `rounds` and matches `password`."""
    if identify(hashed) != (scheme, rounds):
        return False
    require_passlib()
    try:
        return bool(getattr(passlib_hash, scheme).verify(password, hashed))
    except MissingBackendError as exc:
        raise _missing_backend(scheme) from exc
    except ValueError:
        # A hash passlib cannot read (e.g. rounds below its minimum): it gets rewritten.
        return False


class Outcome:
    """What ensure() decided: the action, the new text, and the names-only listings for a diff."""

    __slots__ = ("action", "text", "before", "after")

    def __init__(self, action, text, before, after):
        self.action = action
        self.text = text
        self.before = before
        self.after = after

    @property
    def changed(self):
        return self.action != "unchanged"


def _check_choices(state, update_password):
    if state not in ("present", "absent"):
        raise InvalidInputError("state must be present or absent, not %r" % state)
    if update_password not in ("always", "on_create"):
        raise InvalidInputError("update_password must be always or on_create, not %r" % update_password)


def _apply(htfile, name, state, password, scheme, rounds, update_password):
    """Bring one (validated) user's line to `state` in `htfile`; return the action."""
    if state == "absent":
        return "removed" if htfile.remove(name) else "unchanged"
    current = htfile.get_hash(name)
    if current is None:
        htfile.set_hash(name, make_hash(password, scheme, rounds))
        return "added"
    if update_password == "on_create" or verifies(password, current, scheme, rounds):
        return "unchanged"
    htfile.set_hash(name, make_hash(password, scheme, rounds))
    return "updated"


def ensure(text, name, state, password=None, scheme=DEFAULT_SCHEME, rounds=None, update_password="always"):  # noqa: S107
    """Decide one user's entry in the file `text` (None when the file does not exist).

    Returns an Outcome with action added/updated/removed/unchanged. All input is checked
    before anything is decided; nothing is written here.
    """
    validate_name(name)
    _check_choices(state, update_password)
    if state == "present":
        rounds = resolve_rounds(scheme, rounds)
        validate_password(password, scheme)
        require_passlib()
    htfile = HtpasswdFile.parse(text or "")
    before = htfile.listing()
    action = _apply(htfile, name, state, password, scheme, rounds, update_password)
    if action == "unchanged":
        return Outcome(action, text, before, before)
    marks = {name: action} if action in ("added", "updated") else None
    return Outcome(action, htfile.render(), before, htfile.listing(marks))


class UsersOutcome:
    """What ensure_users() decided: one action per user (removed ones included), the new text, listings."""

    __slots__ = ("actions", "text", "before", "after")

    def __init__(self, actions, text, before, after):
        self.actions = actions
        self.text = text
        self.before = before
        self.after = after

    @property
    def changed(self):
        return any(action != "unchanged" for action in self.actions.values())

    @property
    def removed(self):
        return [name for name, action in self.actions.items() if action == "removed"]


def ensure_users(
    text,
    users,
    state="present",
    exclusive=False,
    scheme=DEFAULT_SCHEME,
    rounds=None,
    update_password="always",  # noqa: S107 - a choice, not a password
):
    """Decide several users' entries at once; with `exclusive`, the file keeps exactly `users`.

    `users` is a list of {name, password} (password unused when state=absent). Every name and
    password is checked before anything is decided; errors name the entry by its index only.
    Returns a UsersOutcome whose `actions` map each listed user, then each user removed for
    `exclusive`, to added/updated/removed/unchanged. Nothing is written here.
    """
    _check_choices(state, update_password)
    if exclusive and state != "present":
        raise InvalidInputError("exclusive applies to state=present only (it removes the users not listed)")
    if state == "present":
        rounds = resolve_rounds(scheme, rounds)
    seen = set()
    for index, user in enumerate(users):
        name = user.get("name")
        try:
            validate_name(name)
            if state == "present":
                validate_password(user.get("password"), scheme)
        except InvalidInputError as exc:
            raise InvalidInputError("users[%d]: %s" % (index, exc)) from None
        if name in seen:
            raise InvalidInputError("users[%d]: user %r is listed twice" % (index, name))
        seen.add(name)
    if state == "present" and users:
        require_passlib()
    htfile = HtpasswdFile.parse(text or "")
    before = htfile.listing()
    actions = {}
    for user in users:
        actions[user["name"]] = _apply(
            htfile, user["name"], state, user.get("password"), scheme, rounds, update_password
        )
    if exclusive:
        for name in htfile.users():
            if name not in seen:
                htfile.remove(name)
                actions[name] = "removed"
    outcome = UsersOutcome(actions, text, before, before)
    if outcome.changed:
        marks = dict((name, action) for name, action in actions.items() if action in ("added", "updated"))
        outcome.text = htfile.render()
        outcome.after = htfile.listing(marks)
    return outcome
