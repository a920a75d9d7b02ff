#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: mlflow_user
short_description: Manage users of MLflow's basic-auth app through its REST API
version_added: "0.1.0"
description:
  - Adds, updates or removes one user of MLflow's own authentication app
    (C(mlflow server --app-name basic-auth)), authenticating as an admin of that app.
  - A present user whose password already works is left alone; the check logs in as the user
    (C(GET /api/2.0/mlflow/users/current)), so no hash is ever read or compared here.
  - Bad input (an empty or short password, a name with C(:), deleting the admin the module logs in
    as) fails before any request. Errors name the user and the HTTP status, never a password.
author:
  - mlops.mlflow maintainers (@mlops-mlflow)
options:
  tracking_uri:
    description:
      - Base URL of the mlflow server, usually the server itself on loopback rather than a proxy.
    type: str
    default: http://127.0.0.1:5000
  admin_username:
    description: Admin user of the auth app the module authenticates as.
    type: str
    required: true
  admin_password:
    description: Password of O(admin_username). Never logged or returned.
    type: str
    required: true
  name:
    description: The user to manage.
    type: str
    required: true
    aliases: [username]
  password:
    description:
      - The user's password, at least 12 characters (MLflow's own rule). Required when
        O(state=present). Never logged or returned.
      - For O(name=admin_username) this is checked (and, if it differs, set) with O(admin_password)
        as the current password.
    type: str
  admin:
    description:
      - Whether the user is an admin of the auth app. Unset leaves an existing user's flag as it
        is and creates a new user as a non-admin.
    type: bool
  state:
    description: Whether the user exists.
    type: str
    choices: [present, absent]
    default: present
  update_password:
    description:
      - V(always) sets the password when logging in with it fails.
      - V(on_create) sets it only when the user is created.
    type: str
    choices: [always, on_create]
    default: always
  validate_certs:
    description: Verify the server's TLS certificate when O(tracking_uri) is HTTPS.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each API call.
    type: int
    default: 30
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads (including the login check) run in check mode; writes do not.
  diff_mode:
    support: full
    details:
      - The diff shows whether the user exists, its admin flag and whether its password changes.
  platform:
    support: full
    platforms: posix
notes:
  - MLflow's auth app creates its first admin from C(MLFLOW_AUTH_ADMIN_PASSWORD) (or
    C(admin_password) in its configuration file) when the server starts against an empty user
    store; this module manages users after that. The M(mlops.mlflow.mlflow_server) role does both.
  - Password and admin-flag changes through the API invalidate the credential cache only in the
    server worker that handled them; with C(auth_cache_ttl_seconds) above zero, other workers may
    accept an old password until the TTL ends.
seealso:
  - name: MLflow authentication
    description: The basic-auth app, its permissions and its REST API.
    link: https://mlflow.org/docs/latest/self-hosting/security/basic-http-auth/
"""

EXAMPLES = r"""
- name: A data scientist with the default permission
  mlops.mlflow.mlflow_user:
    admin_username: admin
    admin_password: "{{ vault_mlflow_admin_password }}"
    name: alice
    password: "{{ vault_alice_password }}"

- name: A second admin
  mlops.mlflow.mlflow_user:
    admin_username: admin
    admin_password: "{{ vault_mlflow_admin_password }}"
    name: ops
    password: "{{ vault_ops_password }}"
    admin: true

- name: Remove a user
  mlops.mlflow.mlflow_user:
    admin_username: admin
    admin_password: "{{ vault_mlflow_admin_password }}"
    name: carol
    state: absent
"""

RETURN = r"""
user:
  description: The user name.
  returned: always
  type: str
  sample: alice
action:
  description: What happened (or, in check mode, would happen) to the user.
  returned: always
  type: str
  sample: created
  choices: [created, updated, removed, unchanged]
is_admin:
  description: The user's admin flag after the task (false for an absent user).
  returned: always
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import fetch_url
from ansible_collections.mlops.mlflow.plugins.module_utils.mlflow_auth import (
    AuthApi,
    MlflowAuthError,
    basic_auth_header,
    ensure_user,
    parse_body,
    validate,
)


def _transport(module):
    base = module.params["tracking_uri"].rstrip("/")

    def send(method, path, credentials, payload):
        headers = {"Authorization": basic_auth_header(*credentials), "Accept": "application/json"}
        data = None
        if payload is not None:
            data = module.jsonify(payload)
            headers["Content-Type"] = "application/json"
        response, info = fetch_url(
            module, base + path, data=data, headers=headers, method=method, timeout=module.params["timeout"]
        )
        status = info.get("status", -1)
        if status == -1:
            raise MlflowAuthError("cannot reach %s: %s" % (base, to_text(info.get("msg", "no answer"))))
        raw = response.read() if response is not None else info.get("body")
        return status, parse_body(raw)

    return send


def main():
    module = AnsibleModule(
        argument_spec=dict(
            tracking_uri=dict(type="str", default="http://127.0.0.1:5000"),
            admin_username=dict(type="str", required=True),
            admin_password=dict(type="str", required=True, no_log=True),
            name=dict(type="str", required=True, aliases=["username"]),
            password=dict(type="str", no_log=True),
            admin=dict(type="bool"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            update_password=dict(type="str", choices=["always", "on_create"], default="always", no_log=False),
            validate_certs=dict(type="bool", default=True),
            timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    params = module.params
    result = dict(changed=False, user=params["name"], action="unchanged", is_admin=False)
    problem = validate(params["name"], params["state"], params["password"], params["admin_username"])
    if problem:
        module.fail_json(msg="mlflow_user %s: %s" % (params["name"], problem), **result)

    api = AuthApi(_transport(module), params["admin_username"], params["admin_password"])
    try:
        changed, action, before, after = ensure_user(
            api,
            params["name"],
            params["state"],
            password=params["password"],
            admin=params["admin"],
            update_password=params["update_password"],
            check_mode=module.check_mode,
        )
    except MlflowAuthError as exc:
        module.fail_json(msg="mlflow_user %s: %s" % (params["name"], to_text(exc)), **result)
    result.update(changed=changed, action=action, is_admin=after["is_admin"])
    if changed and module._diff:
        header = "%s user %s" % (params["tracking_uri"], params["name"])
        result["diff"] = dict(before_header=header, after_header=header, before=before, after=after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
