"""The defaults/argument_specs agreement check finds each kind of drift."""
import importlib.util
import textwrap
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location(
    "check_argument_specs", Path(__file__).resolve().parents[2] / "tools" / "check_argument_specs.py")
checker = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(checker)


def make_role(tmp_path, defaults, spec):
    role = tmp_path / "roles" / "demo"
    (role / "defaults").mkdir(parents=True)
    (role / "meta").mkdir()
    (role / "defaults" / "main.yml").write_text(textwrap.dedent(defaults))
    (role / "meta" / "argument_specs.yml").write_text(textwrap.dedent(spec))
    return role


GOOD_SPEC = """\
argument_specs:
  main:
    options:
      demo_port:
        type: int
        default: 9100
        description: Port.
"""


def test_agreeing_role_has_no_problems(tmp_path):
    role = make_role(tmp_path, "demo_port: 9100\n", GOOD_SPEC)
    assert checker.check_role(role) == []


@pytest.mark.parametrize(("defaults", "expected"), [
    ("demo_port: 9200\n", "default differs"),
    ("demo_port: 9100\ndemo_extra: 1\n", "demo_extra is in defaults/main.yml but not"),
    ("{}\n", "demo_port is in argument_specs but not in defaults"),
])
def test_drift_is_reported(tmp_path, defaults, expected):
    role = make_role(tmp_path, defaults, GOOD_SPEC)
    problems = checker.check_role(role)
    assert any(expected in p for p in problems), problems


def test_unprefixed_variable_is_reported(tmp_path):
    spec = GOOD_SPEC.replace("demo_port", "port")
    role = make_role(tmp_path, "port: 9100\n", spec)
    assert any("does not start with 'demo_'" in p for p in checker.check_role(role))


def test_main_exit_code(tmp_path):
    make_role(tmp_path, "demo_port: 1\n", GOOD_SPEC)
    assert checker.main([str(tmp_path / "roles")]) == 1
