#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: htpasswd
short_description: Manage users of an htpasswd file read by nginx auth_basic
version_added: "0.1.0"
description:
  - Adds, updates or removes one user (O(name)) or several (O(users)) of an htpasswd file, such as
    the one nginx reads with C(auth_basic_user_file).
  - With O(users) and O(exclusive=true) the file holds exactly the listed users afterwards; every
    other user is removed, and check mode and diff report those removals like any other change.
  - A present user whose stored hash already verifies against O(password), with the asked
    O(hash_scheme) and O(rounds), is left alone (no rehash, RV(ignore:changed=false)). A different
    password, or a stored hash of another scheme or cost, rewrites that user's line only.
    Other users, comments, blank lines, their order and the file's line endings are kept
    (other users except those O(exclusive) removes).
  - The new content is written to a temporary file in the same directory and renamed into place.
  - Bad input fails before anything is written, with a message that names the problem but never
    the password or a hash - a name with C(:) or a newline, an empty password, an out-of-range
    O(rounds), or an existing file with a malformed line (the message gives its line number).
author:
  - mlops.mlflow maintainers (@mlops-mlflow)
options:
  path:
    description: Path of the htpasswd file.
    type: path
    required: true
    aliases: [dest]
  name:
    description:
      - User name. It must not be empty, contain C(:), a newline or a carriage return, start with
        C(#) or start or end with whitespace.
      - One of O(name) and O(users) is required; they are mutually exclusive.
    type: str
    aliases: [username]
  password:
    description:
      - Password of the user. Required and not empty when O(state=present); never logged or returned.
      - With O(hash_scheme=bcrypt) at most 72 bytes (bcrypt ignores the rest).
      - Only with O(name); each entry of O(users) has its own.
    type: str
  users:
    description:
      - Several users in one call, each brought to O(state) as O(name) and O(password) would be, and
        the file written once.
      - Names must be unique in the list. An error names the entry by its index, never by its password.
    type: list
    elements: dict
    suboptions:
      name:
        description: User name, as O(name).
        type: str
        required: true
      password:
        description: Password, as O(password); required and not empty when O(state=present).
        type: str
  exclusive:
    description:
      - With V(true), remove every user of the file that is not in O(users), so the file holds exactly
        those users. Comments and blank lines are kept.
      - Needs O(users) and O(state=present). An empty O(users) then removes every user.
    type: bool
    default: false
  state:
    description: Whether the user is in the file.
    type: str
    choices: [present, absent]
    default: present
  hash_scheme:
    description:
      - Hash scheme for an added or rewritten user. nginx on Debian verifies all of them, and so
        does Apache's C(htpasswd -v).
      - C(sha512_crypt) and C(sha256_crypt) write C($6$) and C($5$) hashes, C(bcrypt) writes
        C($2y$) hashes (the form C(htpasswd -B) writes), C(apr_md5_crypt) writes C($apr1$) hashes.
      - The default is chosen for the verify cost nginx pays on every request; see the notes.
    type: str
    choices: [sha512_crypt, sha256_crypt, bcrypt, apr_md5_crypt]
    default: sha512_crypt
  rounds:
    description:
      - Cost of O(hash_scheme). For C(sha512_crypt) and C(sha256_crypt) the number of rounds,
        1000 to 999999999, default C(5000). For C(bcrypt) the log2 cost, 4 to 31, default C(5).
        C(apr_md5_crypt) has a fixed cost and refuses this option.
      - A stored hash with another cost is rewritten (when O(update_password=always)).
      - The module warns when the cost makes a verify about ten times dearer than the default.
    type: int
  update_password:
    description:
      - V(always) rewrites the user's line when the password, the scheme or the cost differ.
      - V(on_create) sets the password only when the user is added and then leaves the line alone.
    type: str
    choices: [always, on_create]
    default: always
  create:
    description:
      - Create the file when it does not exist. When V(false), O(state=present) on a missing file
        fails; O(state=absent) on a missing file is never an error.
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.files
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff lists one C(name (scheme)) per user and marks the added or updated ones; a removed user
        is in the before listing only. Never a hash or a password.
      - Check mode reports the users O(exclusive) would remove (RV(removed)) and leaves the file untouched.
  platform:
    support: full
    platforms: posix
notes:
  - "Why C(sha512_crypt) with 5000 rounds: nginx verifies the hash on every request, inside its
    event loop, so an expensive hash stalls every client of that worker. Measured with
    C(bench/htpasswd_verify.py) (median of one verify; passlib / libcrypt's crypt function, which
    nginx calls), on an x86_64 AMD EPYC KVM guest with 2 vCPUs, Debian 12, Python 3.11, libpass 1.9.4,
    bcrypt 5.0.0:
    apr_md5_crypt 0.35 ms / - (libcrypt has no apr1; nginx has its own);
    sha256_crypt 5000 rounds 1.5 ms / 1.5 ms;
    sha512_crypt 5000 rounds 2.5 ms / 1.5 ms;
    sha512_crypt 50000 rounds 24 ms / 14 ms;
    sha512_crypt 656000 rounds (passlib's own default) 316 ms / 187 ms;
    bcrypt cost 5 1.6 ms / 1.4 ms; cost 8 13 ms / 11 ms; cost 10 51 ms / 43 ms; cost 12 203 ms / 176 ms.
    Median of 21 verifies each; the machine was shared with other work, and earlier runs varied
    by up to about 50%. A Raspberry Pi is several times slower."
  - The default, C(sha512_crypt) at 5000 rounds (glibc's own default), keeps a verify near 2 ms and
    is a salted SHA-2 crypt that nginx on Debian (libxcrypt) verifies. C(bcrypt) defaults to cost 5
    by the same rule (under about 5 ms per verify). A cheap hash relies on strong passwords, TLS
    and rate limiting failed logins; raise O(rounds) only as far as the host can verify per request.
  - A new file gets mode C(0600) unless O(mode) is set; give nginx read access with O(group) and O(mode),
    for example O(group=www-data) and O(mode=0640).
  - The C(ansible.posix.json) stdout callback (also reached as C(ansible.builtin.json)) replaces a
    result's C(action) key with the task's module name in its output; read RV(action) from a
    registered variable.
requirements:
  - passlib (Debian package C(python3-passlib), or the maintained fork C(libpass))
  - bcrypt (Debian package C(python3-bcrypt)) for O(hash_scheme=bcrypt)
seealso:
  - name: nginx auth_basic
    description: The nginx module that reads the file.
    link: https://nginx.org/en/docs/http/ngx_http_auth_basic_module.html
  - module: community.general.htpasswd
"""

EXAMPLES = r"""
- name: Add alice for nginx basic auth, readable by nginx
  mlops.mlflow.htpasswd:
    path: /etc/nginx/mlflow.htpasswd
    name: alice
    password: "{{ vault_alice_password }}"
    owner: root
    group: www-data
    mode: "0640"

- name: Use bcrypt with an explicit cost
  mlops.mlflow.htpasswd:
    path: /etc/nginx/mlflow.htpasswd
    name: bob
    password: "{{ vault_bob_password }}"
    hash_scheme: bcrypt
    rounds: 8

- name: Set an initial password only; users change theirs later
  mlops.mlflow.htpasswd:
    path: /etc/nginx/mlflow.htpasswd
    name: dave
    password: "{{ vault_dave_initial_password }}"
    update_password: on_create

- name: Keep exactly these users in the file, removing any other
  mlops.mlflow.htpasswd:
    path: /etc/nginx/mlflow.htpasswd
    users:
      - name: alice
        password: "{{ vault_alice_password }}"
      - name: bob
        password: "{{ vault_bob_password }}"
    exclusive: true
    owner: root
    group: www-data
    mode: "0640"
  no_log: true  # the passwords are in the arguments
  register: htpasswd_users

- name: Name the users that were removed
  ansible.builtin.debug:
    msg: "removed: {{ htpasswd_users.removed | join(', ') }}"

- name: Remove a user
  mlops.mlflow.htpasswd:
    path: /etc/nginx/mlflow.htpasswd
    name: carol
    state: absent
  register: carol_removed

- name: Show what happened to carol
  ansible.builtin.debug:
    msg: "carol was {{ carol_removed.action }}"
"""

RETURN = r"""
path:
  description: The htpasswd file.
  returned: always
  type: str
  sample: /etc/nginx/mlflow.htpasswd
user:
  description: The user name.
  returned: when O(name) is given
  type: str
  sample: alice
action:
  description:
    - What happened (or, in check mode, would happen) to the user's line.
    - V(unchanged) also when only the file's owner, group or mode were changed (RV(ignore:changed) says so).
  returned: when O(name) is given
  type: str
  sample: added
  choices: [added, updated, removed, unchanged]
users:
  description:
    - With O(users), what happened (or, in check mode, would happen) to each user, by name
      (V(added), V(updated), V(removed) or V(unchanged)); users O(exclusive) removed are included.
  returned: when O(users) is given
  type: dict
  sample: {"alice": "unchanged", "bob": "added", "carol": "removed"}
removed:
  description:
    - With O(users), the names of the users removed (or, in check mode, that would be).
    - The listed ones (O(state=absent)) in list order, then those O(exclusive) removes in file order.
  returned: when O(users) is given
  type: list
  elements: str
  sample: [carol]
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible_collections.mlops.mlflow.plugins.module_utils.htpasswd_file import (
    DEFAULT_SCHEME,
    SCHEMES,
    SLOW_VERIFY_FACTOR,
    HtpasswdError,
    MissingLibraryError,
    ensure,
    ensure_users,
    resolve_rounds,
    verify_cost_factor,
)


def _read(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    except (IOError, OSError) as exc:
        raise HtpasswdError("cannot read the file: %s" % to_native(exc.strerror or exc)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HtpasswdError("the file is not UTF-8 text (byte %d)" % exc.start) from None


def _write(module, path, text):
    """Write `text` to a temp file next to `path` and rename it into place.

    A new file is first created empty with mode 0600, so atomic_move keeps that mode instead of
    giving the hashes the umask's (usually world-readable) mode; `mode` may widen it afterwards.
    """
    directory = os.path.dirname(os.path.abspath(path))
    placeholder = False
    if not os.path.lexists(path):
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except (IOError, OSError) as exc:
            raise HtpasswdError("cannot create the file: %s" % to_native(exc.strerror or exc)) from None
        placeholder = True
    tmp = None
    moved = False
    try:
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as handle:
            handle.write(to_bytes(text, encoding="utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        module.atomic_move(tmp, path, unsafe_writes=module.params["unsafe_writes"])
        moved = True
    except (IOError, OSError) as exc:
        raise HtpasswdError("cannot write the file: %s" % to_native(exc.strerror or exc)) from None
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        if placeholder and not moved and os.path.exists(path) and os.path.getsize(path) == 0:
            os.unlink(path)


def _warn_if_slow(module, scheme, rounds):
    factor = verify_cost_factor(scheme, rounds)
    if factor >= SLOW_VERIFY_FACTOR:
        module.warn(
            "hash_scheme=%s with rounds=%d makes each nginx auth_basic check about %d times as costly as "
            "the default (sha512_crypt, 5000 rounds, about 2 ms); nginx verifies on every request"
            % (scheme, rounds, factor)
        )


def _run(module, result):
    """Do the work; fill `result`; raise HtpasswdError on any failure."""
    params = module.params
    path = params["path"]
    if os.path.isdir(path):
        raise HtpasswdError("the path is a directory")

    if params["exclusive"] and params["users"] is None:
        raise HtpasswdError("exclusive needs users (the complete list of users the file keeps)")
    text = _read(path)
    if text is None and params["state"] == "present" and not params["create"]:
        raise HtpasswdError("the file does not exist and create=false")

    if params["users"] is None:
        outcome = ensure(
            text,
            params["name"],
            params["state"],
            password=params["password"],
            scheme=params["hash_scheme"],
            rounds=params["rounds"],
            update_password=params["update_password"],
        )
        result["action"] = outcome.action
    else:
        outcome = ensure_users(
            text,
            params["users"],
            params["state"],
            exclusive=params["exclusive"],
            scheme=params["hash_scheme"],
            rounds=params["rounds"],
            update_password=params["update_password"],
        )
        result["users"] = outcome.actions
        result["removed"] = outcome.removed
    if params["state"] == "present":
        _warn_if_slow(module, params["hash_scheme"], resolve_rounds(params["hash_scheme"], params["rounds"]))
    if outcome.changed:
        result["changed"] = True
        if module._diff:
            result["diff"] = dict(
                before_header="%s (users)" % path,
                after_header="%s (users)" % path,
                before=outcome.before,
                after=outcome.after,
            )
        if not module.check_mode:
            # Through a symlink, rewrite its target and keep the link.
            _write(module, os.path.realpath(path), outcome.text)

    if os.path.exists(path):
        file_args = module.load_file_common_arguments(params)
        result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True, aliases=["dest"]),
            name=dict(type="str", aliases=["username"]),
            password=dict(type="str", no_log=True),
            users=dict(
                type="list",
                elements="dict",
                options=dict(name=dict(type="str", required=True), password=dict(type="str", no_log=True)),
            ),
            exclusive=dict(type="bool", default=False),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            hash_scheme=dict(type="str", choices=list(SCHEMES), default=DEFAULT_SCHEME),
            rounds=dict(type="int"),
            update_password=dict(type="str", choices=["always", "on_create"], default="always"),
            create=dict(type="bool", default=True),
        ),
        add_file_common_args=True,
        mutually_exclusive=[("name", "users"), ("password", "users")],
        required_one_of=[("name", "users")],
        supports_check_mode=True,
    )
    result = dict(changed=False, path=module.params["path"])
    if module.params["users"] is None:
        result.update(user=module.params["name"], action="unchanged")
    try:
        _run(module, result)
    except HtpasswdError as exc:
        extra = {}
        if isinstance(exc, MissingLibraryError) and exc.import_traceback:
            extra["exception"] = exc.import_traceback
        module.fail_json(msg="htpasswd %s: %s" % (result["path"], to_text(exc)), **dict(result, **extra))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
