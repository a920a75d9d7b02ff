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
  - Adds, updates or removes one user of an htpasswd file.
  - A present user whose stored hash already verifies against I(password), with the asked
    scheme and rounds, is left alone (no rehash, C(changed=false)); a different password or
    a scheme/rounds change rewrites that line only. Other users, comments and order are kept.
  - The file is written to a temporary file in the same directory and renamed into place.
  - "Choosing the scheme: nginx verifies the hash on every request, inside its event loop, so
    an expensive hash slows every client. Measured with passlib on the development machine
    (x86_64, one verify): apr_md5_crypt 0.8 ms; sha512_crypt 5000 rounds 1.9 ms (passlib's own
    default of 656,000 rounds: 287 ms); bcrypt cost 5 1.9 ms, cost 10 51 ms, cost 12 202 ms.
    A Raspberry Pi is several times slower. The default, sha512_crypt with 5000 rounds (glibc's
    default), keeps a verify near 2 ms while staying a salted SHA-2 crypt that nginx on Debian
    (libxcrypt) verifies; protect it with TLS and a failed-login rate limit.
    C(bench/htpasswd_verify.py) re-measures these numbers."
author:
  - mlops.mlflow maintainers (@mlops-mlflow)
options:
  path:
    description: Path of the htpasswd file.
    type: path
    required: true
    aliases: [dest]
  name:
    description: User name; no C(:), newline or surrounding spaces.
    type: str
    required: true
    aliases: [username]
  password:
    description:
      - Password of the user. Required when I(state=present); never logged or returned.
    type: str
  state:
    description: Whether the user is present or absent.
    type: str
    choices: [present, absent]
    default: present
  hash_scheme:
    description: Hash scheme for new or rewritten entries (all are verified by nginx on Debian and Apache's htpasswd).
    type: str
    choices: [sha512_crypt, sha256_crypt, bcrypt, apr_md5_crypt]
    default: sha512_crypt
  rounds:
    description:
      - Cost of the scheme. For C(sha512_crypt)/C(sha256_crypt) the rounds (1000-999999999,
        default 5000); for C(bcrypt) the log2 cost (4-31, default 5). Not accepted for C(apr_md5_crypt).
      - An existing hash with other rounds is rewritten.
    type: int
  update_password:
    description:
      - C(always) rewrites the entry when the password (or scheme/rounds) differs.
      - C(on_create) sets the password only when the user is added.
    type: str
    choices: [always, on_create]
    default: always
  create:
    description: Create the file when it does not exist. When false, a missing file fails (I(state=present)).
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
    details: The diff lists user names only, never hashes or passwords.
  platform:
    support: full
    platforms: posix
notes:
  - A new file gets mode C(0600) unless I(mode) is set; give nginx read access with I(group) and I(mode).
requirements:
  - passlib (Debian package python3-passlib, or the maintained fork libpass)
  - bcrypt (python3-bcrypt) for I(hash_scheme=bcrypt)
seealso:
  - name: nginx auth_basic
    description: The nginx module that reads the file.
    link: https://nginx.org/en/docs/http/ngx_http_auth_basic_module.html
"""

EXAMPLES = r"""
- name: Add alice for nginx basic auth
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

- name: Remove a user
  mlops.mlflow.htpasswd:
    path: /etc/nginx/mlflow.htpasswd
    name: carol
    state: absent
"""

RETURN = r"""
path:
  description: The htpasswd file.
  returned: always
  type: str
  sample: /etc/nginx/mlflow.htpasswd
user:
  description: The user name.
  returned: always
  type: str
  sample: alice
operation:
  description: What happened to the user's entry (C(action) is reserved by Ansible).
  returned: always
  type: str
  sample: added
  choices: [added, updated, removed, unchanged]
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible_collections.mlops.mlflow.plugins.module_utils.htpasswd_file import (
    HAS_PASSLIB,
    PASSLIB_IMPORT_ERROR,
    SCHEMES,
    HtpasswdError,
    ensure_user,
    parse,
    remove_user,
    render,
    user_names,
    validate,
)


def _read(path):
    if not os.path.exists(path):
        return None
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8")


def _write(module, path, text):
    directory = os.path.dirname(os.path.abspath(path))
    existed = os.path.exists(path)
    fd, tmp = tempfile.mkstemp(prefix=".htpasswd-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(to_bytes(text))
        module.atomic_move(tmp, path)
        if not existed:
            # atomic_move gives new files the umask's mode; hashes stay private unless `mode` says otherwise.
            os.chmod(path, 0o600)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _apply(params, text):
    """Return (action, new_text, names_before, names_after); raise HtpasswdError on bad input."""
    rounds = validate(params["name"], params["password"], params["hash_scheme"], params["rounds"], params["state"])
    entries = parse(text or "")
    before = user_names(entries)
    if params["state"] == "present":
        action = ensure_user(
            entries, params["name"], params["password"], params["hash_scheme"], rounds, params["update_password"]
        )
    else:
        action = remove_user(entries, params["name"])
    trailing = text is None or text == "" or text.endswith("\n")
    return action, render(entries, trailing), before, user_names(entries)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True, aliases=["dest"]),
            name=dict(type="str", required=True, aliases=["username"]),
            password=dict(type="str", no_log=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            hash_scheme=dict(type="str", choices=list(SCHEMES), default="sha512_crypt"),
            rounds=dict(type="int"),
            update_password=dict(type="str", choices=["always", "on_create"], default="always"),
            create=dict(type="bool", default=True),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    if not HAS_PASSLIB:
        module.fail_json(msg=missing_required_lib("passlib"), exception=to_native(PASSLIB_IMPORT_ERROR))

    params = module.params
    path = params["path"]
    result = dict(changed=False, path=path, user=params["name"], operation="unchanged")
    try:
        text = _read(path)
        if text is None and params["state"] == "present" and not params["create"]:
            raise HtpasswdError("%s does not exist and create is false" % path)
        if text is None and params["state"] == "absent":
            module.exit_json(**result)
        action, new_text, before, after = _apply(params, text)
    except (HtpasswdError, UnicodeDecodeError, OSError) as exc:
        module.fail_json(msg="htpasswd %s: %s" % (path, to_native(exc)), **result)

    result["operation"] = action
    if action != "unchanged" or text is None:
        result["changed"] = True
        if module._diff:
            result["diff"] = dict(
                before_header="%s (users)" % path,
                after_header="%s (users)" % path,
                before="".join("%s\n" % name for name in before),
                after="".join("%s\n" % name for name in after),
            )
        if not module.check_mode:
            _write(module, path, new_text)

    if os.path.exists(path):
        file_args = module.load_file_common_arguments(params)
        result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
