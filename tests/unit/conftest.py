"""Helpers to run a module's main() in-process (the community.general way)."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils import _internal, basic
from ansible.module_utils.common.text.converters import to_bytes


class ModuleExit(Exception):
    """Raised instead of sys.exit() with the module's JSON result."""

    def __init__(self, result: dict):
        super().__init__(result)
        self.result = result


def _exit_json(self, **kwargs):
    kwargs.setdefault("changed", False)
    kwargs.setdefault("failed", False)
    raise ModuleExit(kwargs)


def _fail_json(self, msg, **kwargs):
    kwargs["failed"] = True
    kwargs["msg"] = msg
    raise ModuleExit(kwargs)


@pytest.fixture
def module_main(monkeypatch):
    """Return a callable: module_main(main_fn, args, check=False, diff=False) -> result dict."""

    def _run(main, args: dict, *, check: bool = False, diff: bool = False) -> dict:
        params = dict(args)
        params["_ansible_check_mode"] = check
        params["_ansible_diff"] = diff
        payload = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": params}))
        monkeypatch.setattr(basic, "_ANSIBLE_ARGS", payload)
        monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)
        monkeypatch.setattr(basic.AnsibleModule, "exit_json", _exit_json)
        monkeypatch.setattr(basic.AnsibleModule, "fail_json", _fail_json)
        # A module runs on the target, where warnings go back with its result; once a test of this
        # session imported controller code (a filter plugin), they would go to the controller's display.
        monkeypatch.setattr(_internal, "is_controller", False)
        with pytest.raises(ModuleExit) as caught:
            main()
        return caught.value.result

    return _run
