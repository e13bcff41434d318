"""tools/fleettest.py: what the end of a failed run says about each failed stage."""
import importlib.util
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / "tools"
SPEC = importlib.util.spec_from_file_location("fleettest", TOOLS / "fleettest.py")
fleettest = importlib.util.module_from_spec(SPEC)
sys.modules["fleettest"] = fleettest
SPEC.loader.exec_module(fleettest)


def test_failure_lines_pick_the_reason_without_colour(tmp_path):
    log = tmp_path / "molecule-x.log"
    log.write_text("PLAY [x]\n"
                   "\x1b[31mfatal: [h1]: UNREACHABLE! => {\"msg\": \"port 22\"}\x1b[0m\n"
                   "ok: [h2]\n"
                   "h1 : ok=1 changed=0 unreachable=1 failed=0\n")
    lines = fleettest.failure_lines(log)
    assert lines == ['fatal: [h1]: UNREACHABLE! => {"msg": "port 22"}',
                     "h1 : ok=1 changed=0 unreachable=1 failed=0"]


def test_failure_lines_fall_back_to_the_tail_and_cut_long_lines(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("\n".join(f"line {i}" for i in range(30)) + "\n" + "y" * 1000 + "\n")
    lines = fleettest.failure_lines(log, limit=3, width=50)
    assert lines == ["line 28", "line 29", "y" * 50]
    assert fleettest.failure_lines(tmp_path / "missing.log") == ["(no log)"]
