"""Run a module's main() in-process with arguments, capturing exit_json/fail_json.

Shared by the tests of sysctl_profile, kernel_modules and file_modes. ansible-core 2.19 and
later pass arguments through ansible.module_utils.testing.patch_module_args; 2.17 and 2.18
read them from basic._ANSIBLE_ARGS.
"""
import contextlib
import json

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    @contextlib.contextmanager
    def patch_module_args(args):
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved


class ModuleExit(Exception):
    """exit_json was called; .result holds its keyword arguments."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


class ModuleFail(ModuleExit):
    """fail_json was called."""


def _exit(_module, **kwargs):
    kwargs.setdefault("changed", False)
    raise ModuleExit(kwargs)


def _fail(_module, **kwargs):
    raise ModuleFail(kwargs)


@pytest.fixture
def run_module(monkeypatch):
    """run_module(module, args, check=False, diff=True) -> result dict; raises ModuleFail on failure."""
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", _exit)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", _fail)

    def _run(module, args, check=False, diff=True):
        full = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
        with patch_module_args(full), pytest.raises(ModuleExit) as caught:
            module.main()
        if isinstance(caught.value, ModuleFail):
            raise caught.value
        return caught.value.result
    return _run
