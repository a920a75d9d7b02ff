"""The basic-auth user logic: what it asks the API, what it decides, and that no password leaks."""

from __future__ import annotations

import pytest
from ansible_collections.mlops.mlflow.plugins.module_utils.mlflow_auth import (
    AuthApi,
    MlflowAuthError,
    basic_auth_header,
    ensure_user,
    parse_body,
    validate,
)

ADMIN = ("admin", "admin-password-0001")


class FakeServer:
    """An in-memory auth app answering the few REST calls the module makes."""

    def __init__(self, users=None):
        self.users = dict(users or {ADMIN[0]: (ADMIN[1], True)})
        self.calls = []

    def send(self, method, path, credentials, payload):
        self.calls.append((method, path.split("?")[0], credentials[0]))
        name, password = credentials
        if self.users.get(name, (None,))[0] != password:
            return 401, "unauthorized"
        if path.endswith("/current"):
            return 200, {"user": {"username": name}}
        if not self.users[name][1]:
            return 403, {"error_code": "PERMISSION_DENIED", "message": "admins only"}
        if "/get?" in path:
            who = path.split("username=")[1]
            if who not in self.users:
                return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no user"}
            return 200, {"user": {"username": who, "is_admin": self.users[who][1]}}
        who = payload["username"]
        if path.endswith("/create"):
            self.users[who] = (payload["password"], False)
        elif path.endswith("/update-password"):
            if who == name:
                assert payload["current_password"] == password
            self.users[who] = (payload["password"], self.users[who][1])
        elif path.endswith("/update-admin"):
            self.users[who] = (self.users[who][0], payload["is_admin"])
        elif path.endswith("/delete"):
            del self.users[who]
        return 200, {}

    def writes(self):
        return [call for call in self.calls if call[0] != "GET"]


def api_for(server, admin=ADMIN):
    return AuthApi(server.send, *admin)


def test_creates_missing_user_then_leaves_it_alone():
    server = FakeServer()
    changed, action, before, after = ensure_user(api_for(server), "alice", "present", password="alice-password-1")
    assert (changed, action) == (True, "created")
    assert before == {"exists": False, "is_admin": False} and after == {"exists": True, "is_admin": False}
    assert server.users["alice"] == ("alice-password-1", False)

    server.calls.clear()
    assert ensure_user(api_for(server), "alice", "present", password="alice-password-1")[:2] == (False, "unchanged")
    assert server.writes() == []


def test_check_mode_reads_but_never_writes():
    server = FakeServer({ADMIN[0]: (ADMIN[1], True), "bob": ("bob-password-0001", False)})
    for kwargs in (
        {"name": "new", "state": "present", "password": "new-password-0001", "admin": True},
        {"name": "bob", "state": "present", "password": "bob-password-0002"},
        {"name": "bob", "state": "absent"},
    ):
        changed = ensure_user(api_for(server), check_mode=True, **kwargs)[0]
        assert changed is True
    assert server.writes() == []
    assert set(server.users) == {"admin", "bob"}


def test_password_is_set_only_when_login_fails_and_update_password_always():
    server = FakeServer({ADMIN[0]: (ADMIN[1], True), "bob": ("old-password-0001", False)})
    assert (
        ensure_user(api_for(server), "bob", "present", password="new-password-0001", update_password="on_create")[0]
        is False
    )
    changed, action, _, after = ensure_user(api_for(server), "bob", "present", password="new-password-0001")
    assert (changed, action, after["password_changed"]) == (True, "updated", True)
    assert server.users["bob"][0] == "new-password-0001"


def test_own_password_change_sends_the_current_one():
    server = FakeServer()
    api = api_for(server)
    api.set_password("admin", "admin-password-0002")
    assert server.users["admin"][0] == "admin-password-0002"


def test_admin_flag_follows_request_and_unset_keeps_it():
    server = FakeServer({ADMIN[0]: (ADMIN[1], True), "ops": ("ops-password-00001", False)})
    assert ensure_user(api_for(server), "ops", "present", password="ops-password-00001", admin=True)[3]["is_admin"]
    assert server.users["ops"][1] is True
    assert ensure_user(api_for(server), "ops", "present", password="ops-password-00001")[0] is False
    assert server.users["ops"][1] is True


def test_never_demotes_the_authenticating_admin():
    with pytest.raises(MlflowAuthError, match="refusing to take the admin flag"):
        ensure_user(api_for(FakeServer()), "admin", "present", password=ADMIN[1], admin=False)


def test_wrong_admin_password_names_the_user_not_the_password():
    wrong = ("admin", "wrong-password-0001")
    with pytest.raises(MlflowAuthError) as caught:
        ensure_user(api_for(FakeServer(), admin=wrong), "alice", "present", password="alice-password-1")
    assert "'admin'" in str(caught.value) and "wrong-password-0001" not in str(caught.value)


def test_non_admin_login_is_reported():
    server = FakeServer({ADMIN[0]: (ADMIN[1], True), "eve": ("eve-password-00001", False)})
    with pytest.raises(MlflowAuthError, match="not an admin"):
        ensure_user(api_for(server, admin=("eve", "eve-password-00001")), "x", "absent")


def test_removal_is_idempotent():
    server = FakeServer({ADMIN[0]: (ADMIN[1], True), "carol": ("carol-password-01", False)})
    assert ensure_user(api_for(server), "carol", "absent")[:2] == (True, "removed")
    assert ensure_user(api_for(server), "carol", "absent")[:2] == (False, "unchanged")


@pytest.mark.parametrize(
    ("name", "state", "password", "expected"),
    [
        ("alice", "present", "long-enough-pass", None),
        ("alice", "present", "", "password is required"),
        ("alice", "present", "elevenchars", "at least 12"),
        ("al:ice", "present", "long-enough-pass", "without ':'"),
        (" alice", "present", "long-enough-pass", "surrounding whitespace"),
        ("admin", "absent", None, "refusing to delete"),
        ("alice", "absent", None, None),
    ],
)
def test_validate(name, state, password, expected):
    problem = validate(name, state, password, "admin")
    if expected is None:
        assert problem is None
    else:
        assert expected in problem
        assert not password or password not in problem


def test_helpers():
    assert basic_auth_header("a", "b") == "Basic YTpi"
    assert parse_body(b'{"x": 1}') == {"x": 1}
    assert parse_body("plain text") == "plain text"
    assert parse_body(None) is None
