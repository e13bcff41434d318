"""docker role: what it would write for the install paths the lab cannot reach (vendor repository on
Debian and EL, static releases from the artifact mirror), rendered by ansible-playbook on localhost
from the role's own defaults, vars and templates with the facts of each platform given."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[3] / "roles" / "docker"
FACTS = {
    "debian12": {"distribution": "Debian", "distribution_release": "bookworm",
                 "distribution_major_version": "12", "os_family": "Debian", "architecture": "x86_64"},
    "debian13": {"distribution": "Debian", "distribution_release": "trixie",
                 "distribution_major_version": "13", "os_family": "Debian", "architecture": "aarch64"},
    "el9": {"distribution": "Rocky", "distribution_release": "Blue Onyx",
            "distribution_major_version": "9", "os_family": "RedHat", "architecture": "x86_64"},
}
CASES = {
    "vendor_bookworm": ("debian12", {"docker_install_method": "vendor", "docker_version": "26.1.5"}),
    "distribution_trixie": ("debian13", {
        "docker_version": "26.1.5", "fleet_http_proxy": "http://proxy.internal:3128",
        "docker_daemon_extra": {"storage-driver": "overlay2"},
        "docker_registry_auths": [{"registry": "registry.internal:5000", "username": "pull",
                                   "password": "p4ss"}]}),
    "vendor_el9": ("el9", {"docker_install_method": "vendor", "docker_version": "26.1.5",
                           "docker_vendor_repo_url": "https://mirror.internal/docker-ce/linux/"}),
    "static_mirror": ("debian12", {"docker_install_method": "static", "docker_version": "27.5.1",
                                   "fleet_artifact_mirror": "http://artifacts.internal:8080/"}),
}
PLAYBOOK = """
- hosts: all
  gather_facts: false
  vars:
    ansible_facts: "{{{{ platform_facts }}}}"
  tasks:
    - ansible.builtin.include_vars: {role}/vars/main.yml
    - ansible.builtin.include_vars: "{role}/vars/{{{{ ansible_facts.os_family }}}}.yml"
    - ansible.builtin.file: {{path: "{out}/{{{{ inventory_hostname }}}}", state: directory, mode: "0755"}}
    - ansible.builtin.template:
        src: "{role}/templates/{{{{ item }}}}.j2"
        dest: "{out}/{{{{ inventory_hostname }}}}/{{{{ item }}}}"
        mode: "0644"
      loop: "{{{{ ['docker.sources' if ansible_facts.os_family == 'Debian' else 'docker-ce.repo',
                  'http-proxy.conf', 'docker.service'] }}}}"
    - ansible.builtin.copy:
        dest: "{out}/{{{{ inventory_hostname }}}}/values.json"
        mode: "0644"
        content: >-
          {{{{ {{'packages': __docker_package_specs, 'daemon': __docker_daemon_config,
               'auth': __docker_registry_auth_file, 'static_url': __docker_static_archive_url,
               'gpg_key_url': __docker_vendor_gpg_key_url}} | to_json }}}}
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """{case: {file name: text, 'values': dict}} from one ansible-playbook run over all cases."""
    out = tmp_path_factory.mktemp("docker-render")
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    hosts = {}
    for case, (platform, overrides) in CASES.items():
        hosts[case] = dict(defaults, ansible_connection="local", ansible_python_interpreter=sys.executable,
                           platform_facts=FACTS[platform], **overrides)
    (out / "inventory.json").write_text(json.dumps({"all": {"hosts": hosts}}))
    (out / "render.yml").write_text(PLAYBOOK.format(role=ROLE, out=out))
    bindir = Path(sys.executable).parent
    proc = subprocess.run([str(bindir / "ansible-playbook"), "-i", str(out / "inventory.json"),
                           str(out / "render.yml")], capture_output=True, text=True, check=False,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = {}
    for case in CASES:
        files = {p.name: p.read_text() for p in (out / case).iterdir()}
        files["values"] = json.loads(files.pop("values.json"))
        result[case] = files
    return result


def test_vendor_source_is_deb822_signed_by_the_vendor_key(rendered):
    sources = rendered["vendor_bookworm"]["docker.sources"]
    assert "URIs: https://download.docker.com/linux/debian\n" in sources
    assert "Suites: bookworm\n" in sources and "Components: stable\n" in sources
    assert "Architectures: amd64\n" in sources
    assert "Signed-By: /etc/apt/keyrings/docker.asc\n" in sources
    assert rendered["vendor_bookworm"]["values"]["gpg_key_url"] == "https://download.docker.com/linux/debian/gpg"


def test_vendor_packages_pin_the_engine_with_the_vendor_epoch(rendered):
    assert rendered["vendor_bookworm"]["values"]["packages"] == [
        "docker-ce=5:26.1.5*", "docker-ce-cli=5:26.1.5*", "containerd.io", "docker-buildx-plugin",
        "docker-compose-plugin"]


def test_distribution_packages_on_trixie_include_the_split_client(rendered):
    packages = rendered["distribution_trixie"]["values"]["packages"]
    assert packages == ["docker.io=26.1.5*", "docker-cli=26.1.5*"]


def test_el_repository_points_at_the_mirror_with_its_key(rendered):
    repo = rendered["vendor_el9"]["docker-ce.repo"]
    assert "baseurl=https://mirror.internal/docker-ce/linux/centos/$releasever/$basearch/stable\n" in repo
    assert "gpgcheck=1\n" in repo
    assert "gpgkey=https://mirror.internal/docker-ce/linux/centos/gpg\n" in repo
    assert rendered["vendor_el9"]["values"]["packages"][:2] == ["docker-ce-26.1.5", "docker-ce-cli-26.1.5"]


def test_static_release_comes_from_the_artifact_mirror(rendered):
    values = rendered["static_mirror"]["values"]
    assert values["static_url"] == "http://artifacts.internal:8080/docker/x86_64/docker-27.5.1.tgz"
    assert "ExecStart=/usr/local/bin/dockerd -H fd://\n" in rendered["static_mirror"]["docker.service"]


def test_daemon_json_carries_structured_settings_and_extras(rendered):
    daemon = rendered["distribution_trixie"]["values"]["daemon"]
    assert daemon == {"exec-opts": ["native.cgroupdriver=systemd"], "default-cgroupns-mode": "private",
                      "live-restore": True, "log-driver": "json-file",
                      "log-opts": {"max-size": "10m", "max-file": "3"}, "storage-driver": "overlay2"}


def test_proxy_drop_in_reads_the_fleet_proxy(rendered):
    drop_in = rendered["distribution_trixie"]["http-proxy.conf"]
    assert 'Environment="HTTP_PROXY=http://proxy.internal:3128"\n' in drop_in
    assert "HTTPS_PROXY" not in drop_in


def test_registry_login_is_docker_config_auths(rendered):
    assert rendered["distribution_trixie"]["values"]["auth"] == {
        "auths": {"registry.internal:5000": {"auth": "cHVsbDpwNHNz"}}}
