"""--check --diff of playbooks/monitoring.yml on the converged fleet predicts no change."""
import json

from conftest import lab_checksums
from shared_checks import recap

PLAYBOOK = "playbooks/monitoring.yml"


def test_check_mode_on_the_converged_fleet_reports_no_change(run_playbook):
    result = run_playbook(PLAYBOOK, check=True,
                          extra_vars=[json.dumps({"node_exporter_checksums": lab_checksums()})])
    assert result.returncode == 0, result.text[-3000:]
    assert recap(result) == dict.fromkeys(["mon", "mon13", "ex12", "ex13"], (0, 0)), result.text[-3000:]
