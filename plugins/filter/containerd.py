# Copyright: (c) 2026, fleetforge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""containerd configuration as data: config.toml for schema 2 (containerd 1.x) and 3 (2.x),
and one certs.d/<registry>/hosts.toml per registry.

Pure functions from the role's structured settings to the documents' data; the role writes
them with P(fleetforge.fleet.to_toml#filter). Schema 2 keeps every CRI setting under the
single ``io.containerd.grpc.v1.cri`` plugin; schema 3 splits it into ``io.containerd.cri.v1.images``
(snapshotter, sandbox image, registry) and ``io.containerd.cri.v1.runtime`` (runtimes, CNI).
"""
from __future__ import annotations

import base64
import copy
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

SCHEMAS = (2, 3)
RUNC_TYPE = "io.containerd.runc.v2"
CRI_V2 = "io.containerd.grpc.v1.cri"
CRI_IMAGES_V3 = "io.containerd.cri.v1.images"
CRI_RUNTIME_V3 = "io.containerd.cri.v1.runtime"
# Registries whose API lives on another host than their name.
KNOWN_SERVERS = {"docker.io": "https://registry-1.docker.io"}


def deep_merge(base, override):
    """``base`` with ``override`` merged in: dicts merge key by key, anything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _runtimes(settings):
    """The runtimes table: runc (with the cgroup driver) first, then the additional ones."""
    runc_options = {"SystemdCgroup": bool(settings.get("systemd_cgroup", True))}
    if settings.get("runc_binary"):
        runc_options["BinaryName"] = settings["runc_binary"]
    runtimes = {"runc": {"runtime_type": RUNC_TYPE, "options": runc_options}}
    for runtime in settings.get("runtimes") or []:
        name = runtime.get("name")
        if not name or not runtime.get("runtime_type"):
            raise AnsibleFilterError(f"containerd runtime {runtime!r} needs a name and a runtime_type")
        entry = {"runtime_type": runtime["runtime_type"]}
        if runtime.get("runtime_path"):
            entry["runtime_path"] = runtime["runtime_path"]
        if runtime.get("pod_annotations"):
            entry["pod_annotations"] = list(runtime["pod_annotations"])
        if runtime.get("privileged_without_host_devices") is not None:
            entry["privileged_without_host_devices"] = bool(runtime["privileged_without_host_devices"])
        if runtime.get("options"):
            entry["options"] = dict(runtime["options"])
        runtimes[name] = entry
    return runtimes


def containerd_config(settings):
    """The data of config.toml for the settings' schema (2 or 3).

    ``settings`` keys: schema, root, state, sandbox_image, snapshotter, systemd_cgroup,
    certs_dir, cni_bin_dir, cni_conf_dir, default_runtime, runtimes, runc_binary,
    disabled_plugins, overrides (merged last, key by key).
    """
    schema = settings.get("schema")
    if schema not in SCHEMAS:
        raise AnsibleFilterError(f"containerd config schema must be one of {SCHEMAS}, got {schema!r}")
    runtimes = _runtimes(settings)
    default_runtime = settings.get("default_runtime") or "runc"
    if default_runtime not in runtimes:
        raise AnsibleFilterError(
            f"containerd default runtime {default_runtime!r} is not one of the runtimes {sorted(runtimes)}")
    runtime_table = {"default_runtime_name": default_runtime, "runtimes": runtimes}
    cni = {"bin_dir": settings["cni_bin_dir"], "conf_dir": settings["cni_conf_dir"]}
    registry = {"config_path": settings["certs_dir"]}
    config = {
        "version": schema,
        "root": settings["root"],
        "state": settings["state"],
        "disabled_plugins": list(settings.get("disabled_plugins") or []),
    }
    if schema == 2:
        runtime_table["snapshotter"] = settings["snapshotter"]
        config["plugins"] = {CRI_V2: {
            "sandbox_image": settings["sandbox_image"],
            "containerd": runtime_table,
            "cni": cni,
            "registry": registry,
        }}
    else:
        config["plugins"] = {
            CRI_IMAGES_V3: {
                "snapshotter": settings["snapshotter"],
                "pinned_images": {"sandbox": settings["sandbox_image"]},
                "registry": registry,
            },
            CRI_RUNTIME_V3: {"containerd": runtime_table, "cni": cni},
        }
    return deep_merge(config, settings.get("overrides") or {})


def registry_server(registry):
    """The upstream URL of a registry entry (``server``, or derived from its name)."""
    name = registry["name"]
    return registry.get("server") or KNOWN_SERVERS.get(name) or f"https://{name}"


def _host_settings(entry, ca_path):
    """TLS and auth keys of one hosts.toml host (or of the top-level server)."""
    out = {}
    if ca_path:
        out["ca"] = ca_path
    if entry.get("skip_verify"):
        out["skip_verify"] = True
    if entry.get("override_path"):
        out["override_path"] = True
    if entry.get("username") or entry.get("password"):
        token = "{}:{}".format(entry.get("username") or "", entry.get("password") or "")
        out["header"] = {"Authorization": ["Basic " + base64.b64encode(token.encode()).decode()]}
    return out


def ca_file_name(url):
    """File name, inside the registry's certs.d directory, of the CA for a host URL."""
    host = url.split("://", 1)[-1].split("/", 1)[0]
    return host.replace(":", "_") + ".crt"


def containerd_hosts(registry, certs_dir):
    """The data of certs.d/<name>/hosts.toml for one registry entry.

    Mirrors come first, in their order, then the upstream server. A host's CA (PEM text
    in ``ca``) is expected at certs.d/<name>/<host>.crt, which the role writes.
    """
    if not isinstance(registry, Mapping) or not registry.get("name"):
        raise AnsibleFilterError(f"containerd registry {registry!r} needs a name")
    directory = f"{certs_dir}/{registry['name']}"
    server = registry_server(registry)
    data = {"server": server}
    top_ca = f"{directory}/{ca_file_name(server)}" if registry.get("ca") else None
    # hosts.toml reads TLS and auth for the server from the top level
    data.update({k: v for k, v in _host_settings(registry, top_ca).items() if k != "override_path"})
    hosts = {}
    for mirror in registry.get("mirrors") or []:
        url = mirror["url"]
        entry = {"capabilities": list(mirror.get("capabilities") or ["pull", "resolve"])}
        entry.update(_host_settings(mirror, f"{directory}/{ca_file_name(url)}" if mirror.get("ca") else None))
        hosts[url] = entry
    if hosts:
        data["host"] = hosts
    return data


def containerd_registry_cas(registries, certs_dir):
    """Every CA file the registries need: [{path, content}], for one copy loop."""
    files = []
    for registry in registries or []:
        directory = f"{certs_dir}/{registry['name']}"
        if registry.get("ca"):
            files.append({"path": f"{directory}/{ca_file_name(registry_server(registry))}",
                          "content": registry["ca"]})
        for mirror in registry.get("mirrors") or []:
            if mirror.get("ca"):
                files.append({"path": f"{directory}/{ca_file_name(mirror['url'])}", "content": mirror["ca"]})
    return files


class FilterModule:
    """containerd configuration filters."""

    def filters(self):
        return {
            "containerd_config": containerd_config,
            "containerd_hosts": containerd_hosts,
            "containerd_registry_cas": containerd_registry_cas,
        }
