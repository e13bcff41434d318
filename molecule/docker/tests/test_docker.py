"""Outcomes on converged hosts: Docker runs with the daemon.json asked for, and runs a container
from an image built here (no registry is reachable from the lab)."""
import base64
import json

import pytest

IMAGE = "fleetforge-test/busybox:local"
CONVERGED = {
    "data-root": "/var/lib/docker-fleet",
    "default-cgroupns-mode": "private",
    "exec-opts": ["native.cgroupdriver=systemd"],
    "insecure-registries": ["registry.fleet.test:5000", "10.99.0.0/16"],
    "live-restore": True,
    "log-driver": "json-file",
    "log-opts": {"max-file": "4", "max-size": "20m"},
    "registry-mirrors": ["http://mirror.fleet.test:5000"],
}
# A docker-save archive (manifest.json, image config, one layer) around Debian's busybox-static,
# built on the host with the standard library only.
BUILD_ARCHIVE = r'''
import hashlib, io, json, os, tarfile
def add(tar, name, data=None, link=None, mode=0o755):
    info = tarfile.TarInfo(name)
    if link:
        info.type, info.linkname = tarfile.SYMTYPE, link
        tar.addfile(info)
    elif data is None:
        info.type, info.mode = tarfile.DIRTYPE, mode
        tar.addfile(info)
    else:
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w") as tar:
    add(tar, "bin")
    add(tar, "bin/busybox", open(os.path.realpath("/bin/busybox"), "rb").read())
    for applet in ("sh", "echo", "cat", "sleep"):
        add(tar, "bin/" + applet, link="busybox")
layer = layer.getvalue()
diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
                     "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
config_name = hashlib.sha256(config).hexdigest() + ".json"
manifest = json.dumps([{"Config": config_name, "RepoTags": ["IMAGE"],
                        "Layers": ["layer.tar"]}]).encode()
with tarfile.open("/tmp/fleetforge-busybox.tar", "w") as out:
    for name, data in (("layer.tar", layer), (config_name, config), ("manifest.json", manifest)):
        add(out, name, data, mode=0o644)
'''.replace("IMAGE", IMAGE)


def docker_info(host):
    with host.sudo():
        return json.loads(host.check_output("docker info --format '{{json .}}'"))


def test_daemon_json_is_the_structured_settings(host):
    config = host.file("/etc/docker/daemon.json")
    assert config.mode == 0o644
    assert json.loads(config.content_string) == CONVERGED


def test_docker_runs_with_those_settings(host):
    info = docker_info(host)
    assert info["CgroupDriver"] == "systemd"
    assert info["LoggingDriver"] == "json-file"
    assert info["LiveRestoreEnabled"] is True
    assert info["DockerRootDir"] == "/var/lib/docker-fleet"
    assert info["RegistryConfig"]["Mirrors"] == ["http://mirror.fleet.test:5000/"]
    assert "registry.fleet.test:5000" in info["RegistryConfig"]["IndexConfigs"]
    assert not info["RegistryConfig"]["IndexConfigs"]["registry.fleet.test:5000"]["Secure"]
    assert "10.99.0.0/16" in info["RegistryConfig"]["InsecureRegistryCIDRs"]


def test_dockerd_has_the_proxy_environment(host):
    info = docker_info(host)
    assert info["HttpProxy"] == "http://proxy.fleet.test:3128"
    assert info["HttpsProxy"] == "http://proxy.fleet.test:3128"
    assert info["NoProxy"] == "localhost,127.0.0.1,.fleet.test"


def test_engine_is_pinned_and_held(host):
    release = host.system_info.release.split(".")[0]
    version = {"12": "20.10.24", "13": "26.1.5"}[release]
    assert host.package("docker.io").version.startswith(version)
    with host.sudo():
        held = host.check_output("apt-mark showhold").split()
    assert "docker.io" in held


def test_registry_login_is_readable_by_root_only(host):
    with host.sudo():
        auth = host.file("/root/.docker/config.json")
        assert (auth.mode, auth.user) == (0o600, "root")
        auths = json.loads(auth.content_string)["auths"]
    assert base64.b64decode(auths["registry.fleet.test:5000"]["auth"]) == b"ci:lab-only-Secr3t"


def test_only_listed_users_are_in_the_docker_group(host):
    assert host.group("docker").members == ["fleetadmin"]


@pytest.fixture
def image(host):
    """The busybox image, imported with docker load from an archive built on the host."""
    with host.sudo():
        if not host.package("busybox-static").is_installed:
            host.check_output("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends"
                              " busybox-static")
        host.check_output(f"python3 - <<'EOF'\n{BUILD_ARCHIVE}\nEOF")
        loaded = host.run("docker load -i /tmp/fleetforge-busybox.tar")
        assert loaded.rc == 0, loaded.stderr
        assert IMAGE in loaded.stdout
    yield IMAGE
    with host.sudo():
        host.run("docker rm -f fleetforge-logs; docker rmi -f %s; rm -f /tmp/fleetforge-busybox.tar", IMAGE)


def test_docker_runs_a_container(host, image):
    with host.sudo():
        run = host.run("docker run --rm %s echo ok", image)
    assert run.rc == 0, run.stderr
    assert run.stdout.strip() == "ok"


def test_new_containers_get_the_log_rotation(host, image):
    with host.sudo():
        host.check_output("docker create --name fleetforge-logs %s echo ok", image)
        log_config = json.loads(host.check_output(
            "docker inspect --format '{{json .HostConfig.LogConfig}}' fleetforge-logs"))
    assert log_config == {"Type": "json-file", "Config": {"max-file": "4", "max-size": "20m"}}
