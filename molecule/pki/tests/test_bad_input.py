"""Bad input stops the role before anything changes, naming the variable."""
import os

CONVERGE = os.path.join(os.path.dirname(__file__), "..", "converge.yml")


def test_host_validity_longer_than_the_ca_is_refused(run_playbook):
    proc = run_playbook(CONVERGE, extra_vars=['{"pki_host_valid_days": 5000}'])
    assert proc.returncode != 0
    assert "pki_ca_valid_days (3650) must exceed pki_host_valid_days (5000)" in proc.text
    assert "changed=0" in proc.text


def test_wrong_type_is_refused(run_playbook):
    proc = run_playbook(CONVERGE, extra_vars=['{"pki_host_sans": "not-a-list"}'])
    assert proc.returncode != 0 and "pki_host_sans" in proc.text


def test_bad_name_is_refused(run_playbook):
    proc = run_playbook(CONVERGE, extra_vars=['{"pki_host_sans": ["bad name; rm -rf /"]}'])
    assert proc.returncode != 0 and "pki_host_sans: not a DNS name or IP address" in proc.text
