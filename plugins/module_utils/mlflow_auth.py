# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)
"""Users of MLflow's basic-auth app (``mlflow server --app-name basic-auth``), over its REST API.

``AuthApi`` speaks the API through a ``send(method, path, credentials, payload)`` callable that
returns ``(status, body)``, so the module can use Ansible's ``fetch_url`` and the unit tests a
recording transport. ``ensure_user`` decides and (unless ``check_mode``) applies one user's state.
Nothing here ever puts a password into a message, a result or an exception.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json

USERS = "/api/2.0/mlflow/users"
MIN_PASSWORD_LENGTH = 12  # mlflow.utils.validation._validate_password


class MlflowAuthError(Exception):
    """A refusal or an API error, worded without any secret."""


def basic_auth_header(username, password):
    token = base64.b64encode(("%s:%s" % (username, password)).encode("utf-8")).decode("ascii")
    return "Basic " + token


def _error_text(body):
    """MLflow's error_code/message, or a short excerpt of a non-JSON body."""
    if isinstance(body, dict):
        return "%s: %s" % (body.get("error_code", "ERROR"), body.get("message", ""))
    return (body or "").strip()[:200]


def parse_body(raw):
    """JSON when the body is JSON, else the text."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class AuthApi:
    def __init__(self, send, admin_username, admin_password):
        self._send = send
        self._admin = (admin_username, admin_password)
        self.admin_username = admin_username

    def _admin_call(self, method, path, payload=None):
        status, body = self._send(method, path, self._admin, payload)
        if status == 401:
            raise MlflowAuthError(
                "the server rejected the admin credentials of '%s' (401); the admin password does not "
                "match the one stored by MLflow's auth app" % self.admin_username
            )
        if status == 403:
            raise MlflowAuthError("user '%s' is not an admin of MLflow's auth app (403)" % self.admin_username)
        return status, body

    def _expect_ok(self, what, status, body):
        if status != 200:
            raise MlflowAuthError("%s failed (HTTP %s): %s" % (what, status, _error_text(body)))

    def get_user(self, name):
        """{'username', 'is_admin'} or None when there is no such user."""
        status, body = self._admin_call("GET", "%s/get?%s" % (USERS, _query(username=name)))
        if status == 404 or (isinstance(body, dict) and body.get("error_code") == "RESOURCE_DOES_NOT_EXIST"):
            return None
        self._expect_ok("reading user '%s'" % name, status, body)
        user = body.get("user", {}) if isinstance(body, dict) else {}
        return {"username": user.get("username", name), "is_admin": bool(user.get("is_admin"))}

    def can_log_in(self, name, password):
        """Whether ``name`` authenticates with ``password`` (the user's own view of itself)."""
        status, body = self._send("GET", "%s/current" % USERS, (name, password), None)
        if status == 200:
            return True
        if status == 401:
            return False
        raise MlflowAuthError("checking the password of '%s' failed (HTTP %s): %s" % (name, status, _error_text(body)))

    def create(self, name, password):
        status, body = self._admin_call("POST", "%s/create" % USERS, {"username": name, "password": password})
        self._expect_ok("creating user '%s'" % name, status, body)

    def set_password(self, name, password):
        payload = {"username": name, "password": password}
        if name == self.admin_username:
            # MLflow asks for the current password when a user changes its own.
            payload["current_password"] = self._admin[1]
        status, body = self._admin_call("PATCH", "%s/update-password" % USERS, payload)
        self._expect_ok("setting the password of '%s'" % name, status, body)

    def set_admin(self, name, is_admin):
        status, body = self._admin_call("PATCH", "%s/update-admin" % USERS, {"username": name, "is_admin": is_admin})
        self._expect_ok("setting the admin flag of '%s'" % name, status, body)

    def delete(self, name):
        status, body = self._admin_call("DELETE", "%s/delete" % USERS, {"username": name})
        self._expect_ok("deleting user '%s'" % name, status, body)


def _query(**params):
    try:
        from urllib.parse import urlencode
    except ImportError:  # pragma: no cover - Python 2 is not supported by the collection
        from urllib import urlencode
    return urlencode(params)


def validate(name, state, password, admin_username):
    """Refuse bad input before any request: returns an error text or None."""
    if not name or name != name.strip() or ":" in name:
        return "name must be non-empty, without ':' or surrounding whitespace"
    if state == "present":
        if not password:
            return "password is required with state=present"
        if len(password) < MIN_PASSWORD_LENGTH:
            return "password must be at least %d characters (MLflow's auth app refuses shorter ones)" % (
                MIN_PASSWORD_LENGTH
            )
    if state == "absent" and name == admin_username:
        return "refusing to delete the admin user the module authenticates as ('%s')" % name
    return None


def ensure_user(api, name, state, password=None, admin=None, update_password="always", check_mode=False):  # noqa: S107
    """Bring one user to ``state``. Returns (changed, action, before, after).

    ``before``/``after`` are ``{'exists', 'is_admin'}``; ``action`` is one of
    created, updated, removed, unchanged.
    """
    current = api.get_user(name)
    before = {"exists": current is not None, "is_admin": bool(current and current["is_admin"])}
    if state == "absent":
        if current is None:
            return False, "unchanged", before, before
        if not check_mode:
            api.delete(name)
        return True, "removed", before, {"exists": False, "is_admin": False}

    want_admin = before["is_admin"] if admin is None else bool(admin)
    after = {"exists": True, "is_admin": want_admin}
    if current is None:
        if not check_mode:
            api.create(name, password)
            if want_admin:
                api.set_admin(name, True)
        return True, "created", before, after

    password_differs = update_password == "always" and not api.can_log_in(name, password)
    admin_differs = want_admin != before["is_admin"]
    if name == api.admin_username and admin_differs and not want_admin:
        raise MlflowAuthError("refusing to take the admin flag from the user the module authenticates as ('%s')" % name)
    if not (password_differs or admin_differs):
        return False, "unchanged", before, after
    if not check_mode:
        if password_differs:
            api.set_password(name, password)
        if admin_differs:
            api.set_admin(name, want_admin)
    after["password_changed"] = password_differs
    return True, "updated", before, after
