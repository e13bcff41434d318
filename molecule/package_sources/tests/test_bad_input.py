"""Bad input fails before any change, naming the variable."""
from pathlib import Path

CONVERGE = Path(__file__).resolve().parent.parent / "converge.yml"


def test_mirror_that_is_not_a_url_fails_before_any_change(host, run_playbook):
    sources = "/etc/apt/sources.list.d/fleetforge.sources"
    before = host.file(sources).sha256sum
    result = run_playbook(CONVERGE, limit=host.backend.get_hostname(),
                          extra_vars=["fleet_apt_mirror=mirror.internal/debian"])
    assert result.returncode != 0
    assert "package_sources_apt_mirror must be an http(s) URL" in result.text
    assert host.file(sources).sha256sum == before
