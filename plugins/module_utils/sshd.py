# -*- coding: utf-8 -*-
# Copyright: fleetforge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure functions behind the sshd_config module: render, parse, compare, admission guard.

Nothing here touches the system: every function takes text or plain data and returns data,
so the decisions are tested in isolation (tests/unit/plugins/modules/test_sshd_config.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import ipaddress
import re

# Directives whose list value is one comma-separated word.
COMMA_LISTS = frozenset([
    "ciphers", "macs", "kexalgorithms", "hostkeyalgorithms", "pubkeyacceptedalgorithms",
    "pubkeyacceptedkeytypes", "casignaturealgorithms", "hostbasedacceptedalgorithms",
])
# Directives written once per list item (each line adds a value).
MULTI_LINE = frozenset(["hostkey", "hostcertificate", "listenaddress", "port", "acceptenv"])
# Directives whose values sshd -T prints one per line; they are compared as lists.
REPEATED_IN_DUMP = MULTI_LINE | frozenset([
    "allowusers", "denyusers", "allowgroups", "denygroups", "authenticationmethods", "subsystem",
])
# Public key types as written in authorized_keys -> signature algorithms that accept them.
KEY_TYPE_ALGORITHMS = {
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
}
ROOT_KEY_LOGIN = ("yes", "prohibit-password", "without-password")
KEY_METHODS = ("publickey",)
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def render_value(key, value):
    """One directive's value(s) as the words to write, one string per line."""
    if isinstance(value, bool):
        return ["yes" if value else "no"]
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
        if key.lower() in COMMA_LISTS:
            return [",".join(items)]
        if key.lower() in MULTI_LINE:
            return items
        return [" ".join(items)]
    return [str(value)]


def render_dropin(settings, header):
    """The whole drop-in text for a dict of directive -> value, in a stable order."""
    lines = ["# %s" % line if line else "#" for line in header.splitlines()]
    for key in sorted(settings, key=str.lower):
        value = settings[key]
        if value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        lines.extend("%s %s" % (key, word) for word in render_value(key, value))
    return "\n".join(lines) + "\n"


def bad_directive_names(settings):
    """Keys that are not directive names, or that repeat another key in other letter case."""
    seen, bad = set(), []
    for key in sorted(settings):
        if not NAME_RE.match(key) or key.lower() in seen:
            bad.append(key)
        seen.add(key.lower())
    return sorted(bad)


def _directive(line):
    words = line.strip().split(None, 1)
    if not words or words[0].startswith("#"):
        return None, ""
    return words[0].lower(), words[1].strip() if len(words) > 1 else ""


def ensure_include(text, include):
    """Main config text with `include` as its first directive (moved there if found later).

    Returns (new_text, changed). Only top-level lines (before the first Match) are moved.
    """
    lines = text.splitlines()
    want = " ".join(include.split()).lower()
    first = None
    kept = []
    in_match = False
    for line in lines:
        key, _rest = _directive(line)
        if key == "match":
            in_match = True
        if key and first is None:
            first = " ".join(line.split()).lower()
        if not in_match and key == "include" and " ".join(line.split()).lower() == want:
            continue
        kept.append(line)
    if first == want:
        return text, False
    position = 0
    for index, line in enumerate(kept):
        if _directive(line)[0]:
            position = index
            break
    else:
        position = len(kept)
    kept[position:position] = [include]
    return "\n".join(kept) + "\n", True


def redirect_include(text, include_glob, replacement_glob):
    """Point every Include of the drop-in directory at a temporary copy of it (for validation)."""
    out = []
    for line in text.splitlines():
        key, rest = _directive(line)
        if key == "include":
            words = [replacement_glob if w == include_glob else w for w in rest.split()]
            out.append("Include " + " ".join(words))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def parse_effective(text):
    """`sshd -T` output as {key: value} (str) or {key: [values]} for repeated directives."""
    result = {}
    for line in text.splitlines():
        key, rest = _directive(line)
        if not key:
            continue
        if key in REPEATED_IN_DUMP:
            result.setdefault(key, []).append(rest)
        else:
            result[key] = rest
    return result


def _words(value):
    if isinstance(value, list):
        return [w.lower() for item in value for w in item.split()]
    return [w.lower() for w in str(value).split()]


def wanted_words(key, value):
    return _words(render_value(key, value))


def not_effective(settings, effective):
    """Keys whose effective value (sshd -T) differs from what the drop-in asks for."""
    missing = []
    for key, value in sorted(settings.items()):
        if value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        lkey = key.lower()
        if lkey in ("port", "listenaddress", "hostkey"):
            got = set(_words(effective.get(lkey, [])))
            if not set(wanted_words(key, value)) <= got:
                missing.append(key)
        elif _words(effective.get(lkey, "")) != wanted_words(key, value):
            missing.append(key)
    return missing


def changed_keys(settings, before, after):
    """Keys of `settings` whose effective value differs between two sshd -T dumps."""
    return sorted(k for k in settings
                  if _words(before.get(k.lower(), "")) != _words(after.get(k.lower(), "")))


def _host_matches(pattern, host, addr):
    if "/" in pattern:
        try:
            return ipaddress.ip_address(addr) in ipaddress.ip_network(pattern, strict=False)
        except ValueError:
            return False
    return fnmatch.fnmatchcase(host, pattern) or fnmatch.fnmatchcase(addr, pattern)


def user_matches(pattern, user, host, addr):
    """sshd's AllowUsers/DenyUsers pattern: USER or USER@HOST, with * and ?."""
    negate = pattern.startswith("!")
    pattern = pattern[1:] if negate else pattern
    name, where = (pattern.split("@", 1) + [""])[:2]
    hit = fnmatch.fnmatchcase(user, name) and (not where or _host_matches(where, host, addr))
    return hit, negate


def _any_match(patterns, names, host, addr):
    matched = False
    for pattern in patterns:
        for name in names:
            hit, negate = user_matches(pattern, name, host, addr)
            if hit and negate:
                return False
            matched = matched or hit
    return matched


def _list(effective, key):
    return [w for item in effective.get(key, []) for w in item.split()]


def access_refusals(effective, user, groups, host, addr):
    """Why AllowUsers/DenyUsers/AllowGroups/DenyGroups would refuse the user (empty = admitted)."""
    refusals = []
    deny = _list(effective, "denyusers")
    if deny and _any_match(deny, [user], host, addr):
        refusals.append("DenyUsers %s matches %s" % (" ".join(deny), user))
    allow = _list(effective, "allowusers")
    if allow and not _any_match(allow, [user], host, addr):
        refusals.append("AllowUsers %s does not include %s" % (" ".join(allow), user))
    deny_groups = _list(effective, "denygroups")
    if deny_groups and _any_match(deny_groups, groups, "", ""):
        refusals.append("DenyGroups %s matches a group of %s (%s)"
                        % (" ".join(deny_groups), user, ",".join(groups)))
    allow_groups = _list(effective, "allowgroups")
    if allow_groups and not _any_match(allow_groups, groups, "", ""):
        refusals.append("AllowGroups %s includes no group of %s (%s)"
                        % (" ".join(allow_groups), user, ",".join(groups)))
    return refusals


def auth_refusals(effective, user):
    """Why key authentication would not be offered to the user (empty = a key can log in)."""
    refusals = []
    if effective.get("pubkeyauthentication", "yes").lower() != "yes":
        refusals.append("PubkeyAuthentication is %s" % effective.get("pubkeyauthentication"))
    methods = effective.get("authenticationmethods", ["any"])
    if not any(alt == "any" or all(m.split(":")[0] in KEY_METHODS for m in alt.split(","))
               for item in methods for alt in item.split()):
        refusals.append("AuthenticationMethods %s has no alternative that uses publickey only"
                        % " ".join(methods))
    if user == "root" and effective.get("permitrootlogin", "").lower() not in ROOT_KEY_LOGIN:
        refusals.append("PermitRootLogin is %s and the Ansible user is root"
                        % effective.get("permitrootlogin"))
    return refusals


def port_refusals(effective, lport, laddr):
    """Why sshd would no longer listen where the current connection arrived (empty = it does)."""
    if not lport:
        return []
    listening = effective.get("listenaddress", [])
    for item in listening:
        host, port = item.rsplit(":", 1) if ":" in item else (item, "")
        host = host.strip("[]")
        if port == str(lport) and host in ("0.0.0.0", "::", laddr):
            return []
    return ["ListenAddress/Port %s do not include %s:%s, where this connection arrived"
            % (" ".join(listening), laddr, lport)]


def expand_key_files(spec, user, home):
    """Paths of AuthorizedKeysFile tokens (%h, %u, %%, relative to home)."""
    paths = []
    for token in spec.split():
        if token.lower() == "none":
            continue
        path = token.replace("%%", "\0").replace("%h", home).replace("%u", user).replace("%U", "")
        path = path.replace("\0", "%")
        if path.startswith("~/"):
            path = home + path[1:]
        elif not path.startswith("/"):
            path = home.rstrip("/") + "/" + path
        paths.append(path)
    return paths


def key_types(text):
    """Key types of the usable lines in an authorized_keys file (options before the type allowed)."""
    types = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        for word in line.split():
            if word.startswith(("ssh-", "ecdsa-", "sk-")) and "=" not in word:
                types.append(word)
                break
    return types


def key_refusals(effective, found):
    """Why no authorized key would be accepted. `found` maps path -> key types in that file."""
    if effective.get("authorizedkeyscommand", "none").lower() != "none":
        return []
    types = [t for path in sorted(found) for t in found[path]]
    if not types:
        return ["no authorized key in AuthorizedKeysFile %s" % effective.get("authorizedkeysfile", "")]
    accepted = effective.get("pubkeyacceptedalgorithms", effective.get("pubkeyacceptedkeytypes"))
    if accepted:
        allowed = set(accepted.lower().split(","))
        base = [t.replace("-cert-v01@openssh.com", "") for t in types]
        if not any(set(KEY_TYPE_ALGORITHMS.get(t, (t,))) & allowed for t in base):
            return ["PubkeyAcceptedAlgorithms %s accepts none of the user's key types (%s)"
                    % (accepted, ",".join(sorted(set(types))))]
    return []


def connection_spec(user, host, addr, laddr="", lport=""):
    parts = ["user=%s" % user, "host=%s" % (host or addr), "addr=%s" % addr]
    if laddr:
        parts.append("laddr=%s" % laddr)
    if lport:
        parts.append("lport=%s" % lport)
    return ",".join(parts)


def ssh_connection_from_environ(data):
    """(client_addr, local_addr, local_port) from a NUL-separated /proc/PID/environ blob."""
    for item in data.split("\0"):
        if item.startswith("SSH_CONNECTION="):
            words = item.split("=", 1)[1].split()
            if len(words) == 4:
                return words[0], words[2], words[3]
    return None


def _hex_addr(text):
    raw = bytes(bytearray.fromhex(text))
    if len(raw) == 4:
        return str(ipaddress.ip_address(raw[::-1]))
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    addr = ipaddress.ip_address(words)
    return str(addr.ipv4_mapped or addr)


def established_peers(proc_net_tcp, ports):
    """[(peer, local_addr, local_port)] of established TCP connections to the given local ports."""
    peers = []
    for line in proc_net_tcp.splitlines()[1:]:
        words = line.split()
        if len(words) < 4 or words[3] != "01":
            continue
        local, remote = words[1].split(":"), words[2].split(":")
        lport = str(int(local[1], 16))
        if lport in ports:
            item = (_hex_addr(remote[0]), _hex_addr(local[0]), lport)
            if item not in peers:
                peers.append(item)
    return peers


def listen_ports(effective):
    return sorted({item.rpartition(":")[2] for item in effective.get("listenaddress", [])}) or ["22"]
