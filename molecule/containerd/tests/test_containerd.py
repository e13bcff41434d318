"""Outcomes on a converged host: containerd runs a real container, its CRI plugin is loaded,
and the effective configuration carries what the role's variables asked for."""
import base64
import re
import textwrap

import pytest
from oci_image import busybox_run  # next to this file

CERTS = "/etc/containerd/certs.d"
# Stand-in for a registry mirror (no registry is reachable here): logs each request's path and
# Authorization header, answers 404, so containerd's resolver shows where it went and with what.
STANDIN_MIRROR = textwrap.dedent("""
    import http.server, sys
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            with open(sys.argv[1], "a") as log:
                log.write(self.path + " " + str(self.headers.get("Authorization")) + "\\n")
            self.send_response(404); self.end_headers()
        do_HEAD = do_GET
    http.server.HTTPServer(("127.0.0.1", 5000), H).handle_request()
""")


def _sudo(host, cmd):
    with host.sudo():
        return host.run(cmd)


def test_containerd_runs_and_is_enabled(host):
    service = host.service("containerd")
    assert service.is_running
    assert service.is_enabled


def test_packages_are_held(host):
    held = _sudo(host, "apt-mark showhold").stdout.split()
    assert "containerd" in held and "runc" in held


def test_daemon_has_the_proxy_environment(host):
    dropin = host.file("/etc/systemd/system/containerd.service.d/fleetforge-proxy.conf")
    assert dropin.mode == 0o644
    environment = _sudo(host, "systemctl show -p Environment containerd").stdout
    assert "HTTP_PROXY=http://127.0.0.1:3128" in environment
    assert "NO_PROXY=localhost,127.0.0.1" in environment
    assert "HTTPS_PROXY" not in environment


def test_cri_plugin_is_loaded(host):
    plugins = _sudo(host, "ctr plugins ls").stdout
    assert re.search(r"^io\.containerd\.grpc\.v1\s+cri\s+\S+\s+ok\s*$", plugins, re.M), plugins


@pytest.fixture(scope="module")
def config_dump(host):
    cmd = _sudo(host, "containerd config dump")
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout


def test_effective_config_has_systemd_cgroup_for_runc(config_dump):
    runc = config_dump.split('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]', 1)[1]
    assert re.match(r"\s*(\S+ = .*\n\s*)*?SystemdCgroup = true", runc)


def test_effective_config_has_our_settings(config_dump):
    assert 'sandbox_image = "registry.internal.example:5000/pause:3.9-fleettest"' in config_dump
    assert 'config_path = "/etc/containerd/certs.d"' in config_dump
    assert '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc]' in config_dump
    assert 'runtime_type = "io.containerd.runsc.v1"' in config_dump
    assert re.search(r'^\s+snapshotter = "native"$', config_dump, re.M)


def test_hosts_toml_is_private_and_names_the_mirror(host):
    hosts = host.file("/etc/containerd/certs.d/docker.io/hosts.toml")
    assert hosts.user == "root" and hosts.mode == 0o600
    with host.sudo():
        content = hosts.content_string
    assert 'server = "https://registry-1.docker.io"' in content
    assert '[host."http://127.0.0.1:5000"]' in content
    assert 'capabilities = ["pull", "resolve"]' in content


def test_insecure_registry_has_skip_verify(host):
    with host.sudo():
        content = host.file(f"{CERTS}/registry.internal.example:5000/hosts.toml").content_string
    assert 'server = "https://registry.internal.example:5000"' in content
    assert "skip_verify = true" in content


def test_pull_goes_to_the_mirror_with_its_credentials(host):
    log = "/tmp/fleettest-mirror.log"
    _sudo(host, f"rm -f {log}")
    script = base64.b64encode(STANDIN_MIRROR.encode()).decode()
    _sudo(host, f"echo {script} | base64 -d > /tmp/fleettest-mirror.py")
    _sudo(host, f"(timeout 60 python3 /tmp/fleettest-mirror.py {log} >/dev/null 2>&1 &) ; sleep 1")
    pull = _sudo(host, "timeout 30 ctr -n fleettest images pull --hosts-dir /etc/containerd/certs.d "
                       "docker.io/library/busybox:latest")
    assert pull.rc != 0  # the stand-in has no images; what matters is where the request went
    seen = _sudo(host, f"cat {log}").stdout
    expected = "Basic " + base64.b64encode(b"fleetpull:s3cret-fleettest").decode()
    assert re.search(r"^/v2/library/busybox/manifests/latest(\?ns=docker\.io)? " + re.escape(expected) + "$",
                     seen, re.M), seen


def test_runs_a_container_from_a_locally_built_image(host):
    # the lab's snapshotter (see converge.yml); the image comes from Debian's busybox-static
    run = busybox_run(host, snapshotter="native")
    assert run.rc == 0, run.stderr
    assert run.stdout.strip() == "hello from Linux"
