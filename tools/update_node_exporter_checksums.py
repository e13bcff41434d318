#!/usr/bin/env python3
"""Regenerate or check node_exporter's pinned checksums from upstream's sha256sums.txt.

    python3 tools/update_node_exporter_checksums.py --check 1.11.1 1.10.2   # compare with the table
    python3 tools/update_node_exporter_checksums.py --write 1.12.0          # add or refresh versions

Only each release's sha256sums.txt is fetched (never an archive), so the table stays a record of
what upstream published, independent of the mirror that later serves the archives. Needs the
internet (github.com); behind a proxy, set HTTPS_PROXY.
"""
from __future__ import annotations

import argparse
import datetime
import re
import sys
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
TABLE = REPO / "roles" / "node_exporter" / "vars" / "checksums.yml"
KEY = "__node_exporter_checksums_pinned"
SUMS_URL = "https://github.com/prometheus/node_exporter/releases/download/v{version}/sha256sums.txt"
DEFAULT_ARCHES = ("amd64", "arm64")
VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(-rc\.[0-9]+)?$")
LINE = re.compile(r"^(?P<sha>[0-9a-f]{64})\s+\*?"
                  r"node_exporter-(?P<version>[^\s]+)\.linux-(?P<arch>[a-z0-9]+)\.tar\.gz$")


class ChecksumError(Exception):
    pass


def parse_sha256sums(text: str, version: str, arches=DEFAULT_ARCHES) -> dict[str, str]:
    """{arch: sha256} of the linux archives of ``version`` listed in a sha256sums.txt."""
    found: dict[str, str] = {}
    for raw in text.splitlines():
        match = LINE.match(raw.strip())
        if not match or match["version"] != version:
            continue
        arch = match["arch"]
        if arch in found and found[arch] != match["sha"]:
            raise ChecksumError(f"{version} linux-{arch} is listed twice with different sha256")
        found[arch] = match["sha"]
    missing = [arch for arch in arches if arch not in found]
    if missing:
        raise ChecksumError(f"sha256sums.txt of {version} lists no linux archive for {', '.join(missing)}")
    return {arch: found[arch] for arch in arches}


def version_key(version: str):
    return tuple(int(part) for part in re.findall(r"[0-9]+", version))


def read_table(path: Path = TABLE) -> tuple[str, dict]:
    """(the comment header, the table) of the checksum file."""
    text = path.read_text()
    header = text[:text.index(KEY + ":")]
    return header, (yaml.safe_load(text) or {}).get(KEY) or {}


def render(header: str, table: dict) -> str:
    lines = [header.rstrip("\n"), KEY + ":"]
    for version in sorted(table, key=version_key, reverse=True):
        lines.append(f'  "{version}":')
        # quoted: a digest of digits only would otherwise read back as a number
        lines.extend(f'    {arch}: "{sha}"' for arch, sha in sorted(table[version].items()))
    return "\n".join(lines) + "\n"


def compare(table: dict, version: str, upstream: dict[str, str]) -> list[str]:
    """Differences between the pinned table and upstream for one version (empty: they agree)."""
    pinned = table.get(version) or {}
    problems = []
    for arch, sha in upstream.items():
        if arch not in pinned:
            problems.append(f"{version} linux-{arch}: not pinned (upstream {sha})")
        elif pinned[arch] != sha:
            problems.append(f"{version} linux-{arch}: pinned {pinned[arch]} but upstream publishes {sha}")
    return problems


def fetch(version: str, timeout: float = 30) -> str:
    with urllib.request.urlopen(SUMS_URL.format(version=version), timeout=timeout) as response:
        return response.read().decode()


def main(argv=None, fetcher=fetch, table_path: Path = TABLE) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="compare the pinned table with upstream")
    mode.add_argument("--write", action="store_true", help="add or refresh the versions in the table")
    parser.add_argument("--arch", action="append", help="architectures (default: amd64 and arm64)")
    parser.add_argument("versions", nargs="+", metavar="VERSION")
    args = parser.parse_args(argv)
    arches = tuple(args.arch or DEFAULT_ARCHES)
    bad = [v for v in args.versions if not VERSION.match(v)]
    if bad:
        parser.error(f"not a release version: {', '.join(bad)} (write 1.11.1, never 'latest')")
    header, table = read_table(table_path)
    problems = []
    today = datetime.date.today().isoformat()
    for version in args.versions:
        try:
            upstream = parse_sha256sums(fetcher(version), version, arches)
        except (OSError, ChecksumError) as exc:
            print(f"{version}: {exc}", file=sys.stderr)
            return 2
        if args.check:
            problems += compare(table, version, upstream)
        else:
            table[version] = {**(table.get(version) or {}), **upstream}
            source = SUMS_URL.format(version=version)
            header += f"# - {version} {'+'.join(arches)}: {source}, fetched {today}.\n"
    if args.write:
        table_path.write_text(render(header, table))
        print(f"wrote {len(args.versions)} version(s) to {table_path}")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
