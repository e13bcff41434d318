"""Outcomes on an air-gapped host: packages install through the fleet's mirror and nothing else."""


def test_sources_point_at_the_mirror(host, lab_vars):
    sources = host.file("/etc/apt/sources.list.d/fleetforge.sources")
    assert sources.exists and sources.mode == 0o644
    assert f"URIs: {lab_vars['fleet_apt_mirror']}" in sources.content_string
    assert f"URIs: {lab_vars['fleet_apt_security_mirror']}" in sources.content_string
    assert "deb.debian.org" not in host.file("/etc/apt/sources.list").content_string


def test_no_direct_route_out(host):
    # The lab's internal network has no route out: this makes the mirror test meaningful.
    cmd = host.run("timeout 5 bash -c 'echo > /dev/tcp/deb.debian.org/80'")
    assert cmd.rc != 0


def test_package_installs_through_the_mirror(host):
    with host.sudo():
        cmd = host.run("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends tree")
    assert cmd.rc == 0, cmd.stderr
    assert host.package("tree").is_installed
