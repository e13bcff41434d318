#!/usr/bin/env python3
"""Benchmark fleetforge.fleet.ec2 against amazon.aws.aws_ec2 on the same EC2 data.

1. seeds moto_server with N instances over R regions (realistic tags, some stopped, some
   without a Name), in reservations of 10;
2. records every answer both plugins need once, through a recording proxy in front of moto;
3. serves the timed runs from those recordings with a tiny local HTTP server (so moto's XML
   rendering is not measured), optionally adding --latency-ms per request;
4. runs `ansible-inventory --list`, `--graph` and a cache hit (`--graph` with a warm jsonfile
   cache) for both plugins, interleaved, --runs times each, and prints medians of wall time,
   peak RSS (per run, from wait4 in a small launcher), host and group counts, API calls and
   the ratios;
5. with --latency-ms, compares our fetch time over all regions with the slowest single region.

    .venv/bin/python bench/ec2_inventory.py [--instances 4000] [--regions 8] [--runs 5]
                                            [--latency-ms 200] [--latency-runs 5]
                                            [--recording FILE] [--latency-only]

--recording FILE keeps the recorded answers (seeding 4,000 instances in moto takes minutes):
written when FILE does not exist, reused when it does. --latency-only skips the interleaved
runs against amazon.aws.aws_ec2 (for repeating the latency figure). The load average of the
machine is printed with every phase, since the machine is shared.

Needs the `ansible` package (amazon.aws) and moto[server] in the running Python (the .venv).
FLEET_BENCH_COLLECTIONS=DIR measures the collection found under DIR (default: this checkout).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "unit" / "plugins" / "inventory"))
import aws_lab  # moto_server, local HTTP server and seeding helpers shared with the tests

ALL_REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1",
               "ap-northeast-1", "sa-east-1", "ca-central-1", "eu-north-1", "ap-south-1"]
BIN = Path(sys.executable).parent
CREDENTIAL_RE = re.compile(r"Credential=[^/]+/[^/]+/([^/]+)/")
# per-request fields that change on every call and must not be part of the replay key
VOLATILE = re.compile(r"(&?(X-Amz-[A-Za-z-]+|Signature[A-Za-z]*|Timestamp)=[^&]*)")

SHARED = {
    "keyed_groups": [
        {"key": "placement.region", "prefix": "region"},
        {"key": "placement.availability_zone", "prefix": "az"},
        {"key": "instance_type", "prefix": "type"},
        {"key": "state.name", "prefix": "state"},
        {"key": "tags.Env | default('none')", "prefix": "env"},
        {"key": "tags.Role | default('none')", "prefix": "role"},
        {"key": "tags.Team | default('none')", "prefix": "team"},
        {"key": "vpc_id", "prefix": "vpc"},
    ],
    "groups": {"production": "tags.Env | default('') == 'prod'",
               "large": "instance_type.startswith('m5')"},
    "compose": {"ansible_host": "private_ip_address", "fleet_role": "tags.Role | default('none')"},
    "strict": False,
}


def seed_region(boto3, url, region, count_wanted, rng):
    """Reservations of 10 sharing Env/Role/Team tags; each instance its own Name (10% none)."""
    ec2 = aws_lab.account_client(boto3, url, "ec2", region)
    roles = ["web", "api", "db", "cache", "worker", "batch"]
    teams = ["core", "payments", "search", "data"]
    left, batch, number = count_wanted, 0, 0
    while left > 0:
        count = min(10, left)
        role = rng.choice(roles)
        tags = {"Env": rng.choice(["prod", "prod", "stage", "dev"]), "Role": role,
                "Team": rng.choice(teams), "CostCenter": str(rng.randint(1000, 9999))}
        ids = aws_lab.run(ec2, tags, count=count,
                          instance_type=rng.choice(["t3.micro", "t3.large", "m5.large"]))
        for iid in ids:
            number += 1
            if rng.random() > 0.1:
                ec2.create_tags(Resources=[iid], Tags=[
                    {"Key": "Name", "Value": f"{role}-{region}-{number:05d}"}])
        if rng.random() < 0.1:
            ec2.stop_instances(InstanceIds=ids)
        left -= count
        batch += 1


def seed(url, instances, regions):
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    per_region = instances // len(regions)
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda item: seed_region(boto3, url, item[1], per_region,
                                               random.Random(item[0])), enumerate(regions)))
    print(f"  seeded {per_region} instances in each of {len(regions)} regions", flush=True)


class Recorder:
    """Recording proxy (record mode) and replay server (replay mode), keyed by region + body."""

    def __init__(self, upstream_port=None, latency=0.0):
        self.upstream_port = upstream_port
        self.latency = latency
        self.answers = {}
        self.calls = 0
        self.misses = []
        self.lock = threading.Lock()
        self.server, self.url = aws_lab.serve(self.handle)

    def key(self, handler, body):
        match = CREDENTIAL_RE.search(handler.headers.get("Authorization", ""))
        region = match.group(1) if match else ""
        text = VOLATILE.sub("", body.decode("utf-8", "replace"))
        return region + "|" + handler.headers.get("X-Amz-Target", "") + "|" + \
            "&".join(sorted(text.split("&")))

    def handle(self, handler):
        import http.client
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        key = self.key(handler, body)
        with self.lock:
            self.calls += 1
        if self.upstream_port:  # record
            conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=300)
            headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
            conn.request("POST", handler.path, body=body, headers=headers)
            response = conn.getresponse()
            status, payload = response.status, response.read()
            content_type = response.getheader("Content-Type", "text/xml")
            conn.close()
            with self.lock:
                self.answers[key] = (status, payload, content_type)
        else:  # replay
            if self.latency:
                time.sleep(self.latency)
            try:
                status, payload, content_type = self.answers[key]
            except KeyError:
                with self.lock:
                    self.misses.append(key[:200])
                status, payload, content_type = 500, b"not recorded", "text/plain"
        aws_lab.reply(handler, status, payload, {"Content-Type": content_type})

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def write_configs(workdir, url, regions):
    common = dict(SHARED, regions=regions)
    ours = dict(common, plugin="fleetforge.fleet.ec2", endpoint_url=url,
                aws_access_key="bench", aws_secret_key="bench",
                hostnames=["tag:Name", "private-dns-name"], ansible_host="none")
    theirs = dict(common, plugin="amazon.aws.aws_ec2", endpoint_url=url,
                  access_key="bench", secret_key="bench",
                  hostnames=["tag:Name", "private-dns-name"])
    paths = {}
    for name, config in (("fleet", ours), ("aws", theirs)):
        for cached in (False, True):
            conf = dict(config)
            if cached:
                conf.update(cache=True, cache_plugin="ansible.builtin.jsonfile",
                            cache_connection=str(workdir / f"cache-{name}"), cache_timeout=3600)
            suffix = "fleet_ec2.yml" if name == "fleet" else "aws_ec2.yml"
            path = workdir / f"{name}{'-cached' if cached else ''}.{suffix}"
            path.write_text(json.dumps(conf))
            paths[(name, cached)] = path
    return paths


# Linux keeps a process's peak RSS across exec: ansible-inventory started straight from this
# bench (which holds the recording, about 200 MiB) would report at least the bench's own peak.
# A small launcher forks it instead (a new process starts counting from the launcher's few MiB)
# and writes the command's wall time and its own peak RSS, from wait4.
LAUNCHER = (
    "import os, sys, time\n"
    "started = time.monotonic()\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execv(sys.argv[2], sys.argv[2:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "with open(sys.argv[1], 'w') as out:\n"
    "    out.write('%f %d' % (time.monotonic() - started, usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n")


def run_inventory(path, mode, extra_env=None):
    """(wall seconds, peak RSS KiB, stdout, stderr) of one ansible-inventory run.

    The peak RSS is the largest of ansible-inventory's and of the children it waited for (what
    Linux reports); fleetforge.fleet.ec2's page reader processes report theirs at -vvv.
    """
    collections = os.environ.get("FLEET_BENCH_COLLECTIONS", str(REPO / ".build" / "collections"))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections + ":"
               + str(BIN.parent / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
                     / "site-packages"),
               ANSIBLE_INVENTORY_UNPARSED_FAILED="1", **(extra_env or {}))
    cmd = [str(BIN / "ansible-inventory"), "-i", str(path), mode]
    if mode == "-vvv":
        cmd = [str(BIN / "ansible-inventory"), "-i", str(path), "--graph", "-vvv"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as figures:
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", LAUNCHER, figures.name, *cmd],
                              stdout=out, stderr=err, env=env, check=False)
        wall, peak_kib = figures.read().split()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{stderr[-3000:]}")
    return float(wall), int(peak_kib), stdout, stderr


def counts(stdout_list):
    data = json.loads(stdout_list)
    hosts = set(data.get("_meta", {}).get("hostvars", {}))
    groups = [g for g in data if g not in ("_meta", "all", "ungrouped")]
    return len(hosts), len(groups)


SCENARIOS = [("list", False, "--list"), ("graph", False, "--graph"), ("cache hit", True, "--graph")]
READERS = re.compile(r"pages read by them: (\d+) \(([0-9.]+) s CPU, (\d+) MiB peak RSS")
FETCH = re.compile(r"fetched (\d+) scope\(s\) in ([0-9.]+) s \(([0-9.]+) s CPU\)")


def record(instances, regions, workdir):
    """Seed moto, run both plugins once through the recording proxy: (answers, --list outputs)."""
    print(f"seeding {instances} instances over {len(regions)} regions in moto", flush=True)
    moto = aws_lab.MotoServer()
    try:
        seed(moto.url, instances, regions)
        recorder = Recorder(upstream_port=moto.port)
        paths = write_configs(workdir, recorder.url, regions)
        print("recording the answers both plugins need", flush=True)
        listings = {name: run_inventory(paths[(name, False)], "--list")[2]
                    for name in ("fleet", "aws")}
        recorder.stop()
    finally:
        moto.stop()
    return recorder.answers, listings


def load_recording(path):
    data = json.loads(Path(path).read_text())
    answers = {key: (status, base64.b64decode(payload), ctype)
               for key, status, payload, ctype in data["answers"]}
    return data["instances"], data["regions"], answers, data["listings"]


def save_recording(path, instances, regions, answers, listings):
    Path(path).write_text(json.dumps({
        "instances": instances, "regions": regions, "listings": listings,
        "answers": [[key, status, base64.b64encode(payload).decode(), ctype]
                    for key, (status, payload, ctype) in answers.items()]}))


def load_average():
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def timed_runs(paths, replay, runs):
    """{(scenario, plugin): {"wall": [...], "rss": [...], "calls": [...]}}, interleaved."""
    for name in ("fleet", "aws"):  # warm both caches
        run_inventory(paths[(name, True)], "--graph")
    results = {}
    for run in range(runs):
        for label, cached, mode in SCENARIOS:
            for name in ("fleet", "aws"):
                replay.calls = 0
                wall, rss, _, _ = run_inventory(paths[(name, cached)], mode)
                entry = results.setdefault((label, name), {"wall": [], "rss": [], "calls": []})
                entry["wall"].append(wall)
                entry["rss"].append(rss)
                entry["calls"].append(replay.calls)
        print(f"  run {run + 1}/{runs} done ({load_average()})", flush=True)
    return results


def report(args, regions, listings, results):
    host_counts = {name: counts(listings[name]) for name in listings}
    core = subprocess.check_output([str(BIN / "ansible"), "--version"], text=True).split()[2]
    print(f"\n{args.instances} instances, {len(regions)} regions, {args.runs} interleaved runs, "
          f"ansible-core {core.rstrip(']')}")
    print(f"(hosts, groups): fleetforge.fleet.ec2 {host_counts['fleet']}, "
          f"amazon.aws.aws_ec2 {host_counts['aws']}")
    print("| run | fleet median s | aws_ec2 median s | speed-up | fleet peak RSS MiB | "
          "aws_ec2 peak RSS MiB | fleet API calls | aws_ec2 API calls |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, _, _ in SCENARIOS:
        ours, theirs = results[(label, "fleet")], results[(label, "aws")]
        mo, mt = statistics.median(ours["wall"]), statistics.median(theirs["wall"])
        print(f"| {label} | {mo:.2f} | {mt:.2f} | {mt / mo:.1f}x | {max(ours['rss']) / 1024:.0f} | "
              f"{max(theirs['rss']) / 1024:.0f} | {max(ours['calls'])} | {max(theirs['calls'])} |")


class Fetch(NamedTuple):
    """One fetch, from the plugin's -vvv lines."""
    wall: float  # seconds
    cpu: float  # seconds of the ansible-inventory process (its helper processes not counted)
    helper_pages: int  # pages its page reader processes read
    helper_rss_mib: int  # their peak RSS, added up
    helper_cpu: float  # their CPU seconds (0 without them)


def fetch_seconds(path):
    """The Fetch of one `ansible-inventory --graph -vvv` run of this configuration."""
    _, _, stdout, stderr = run_inventory(path, "-vvv")
    output = stdout + stderr
    match, readers = FETCH.search(output), READERS.search(output)
    return Fetch(float(match.group(2)), float(match.group(3)),
                 int(readers.group(1)) if readers else 0, int(readers.group(3)) if readers else 0,
                 float(readers.group(2)) if readers else 0.0)


def latency_check(paths, replay, regions, workdir, latency_ms, runs):
    """Our fetch time (from -vvv) over all regions vs the slowest single region.

    Every region alone and all regions together, interleaved, `runs` times each; the ratio is
    the median of all regions over the highest per-region median. CPU seconds of the fetch
    (the whole process, all threads) are reported too: on a shared machine they are the
    steadier figure.
    """
    replay.latency = latency_ms / 1000.0
    single = json.loads(paths[("fleet", False)].read_text())
    region_paths = {}
    for region in regions:
        path = workdir / f"single-{region}.fleet_ec2.yml"
        path.write_text(json.dumps(dict(single, regions=[region])))
        region_paths[region] = path
    in_threads = workdir / "all-in-threads.fleet_ec2.yml"  # the A/B: no page reader processes
    in_threads.write_text(json.dumps(dict(single, parse_workers=0)))
    per_region = {region: [] for region in regions}
    whole, whole_in_threads = [], []
    for run in range(runs):
        for region in regions:
            per_region[region].append(fetch_seconds(region_paths[region]))
        whole.append(fetch_seconds(paths[("fleet", False)]))
        whole_in_threads.append(fetch_seconds(in_threads))
        slowest_now = max(values[-1].wall for values in per_region.values())
        print(f"  latency run {run + 1}/{runs}: all regions {whole[-1].wall:.2f} s "
              f"({whole[-1].cpu:.2f} s CPU, {whole[-1].helper_pages} pages read by helper "
              f"processes), with parse_workers 0 {whole_in_threads[-1].wall:.2f} s, slowest single "
              f"{slowest_now:.2f} s ({load_average()})", flush=True)
    medians = {region: statistics.median(v.wall for v in values)
               for region, values in per_region.items()}
    cpu_single = statistics.median(v.cpu for values in per_region.values() for v in values)
    slowest = max(medians.values())
    median = statistics.median(v.wall for v in whole)
    median_in_threads = statistics.median(v.wall for v in whole_in_threads)
    cpu_whole = statistics.median(v.cpu for v in whole)
    print(f"\nwith {latency_ms} ms per request ({runs} runs): slowest single region fetch "
          f"(median) {slowest:.2f} s, all {len(regions)} regions {median:.2f} s "
          f"({median / slowest:.2f}x); all-region runs: "
          + ", ".join(f"{value.wall:.2f}" for value in whole)
          + f"\nfetch CPU (median): one region {cpu_single:.2f} s, all {len(regions)} regions "
          f"{cpu_whole:.2f} s (the parent process; helper processes not counted)"
          f"\npage reader processes: {statistics.median(v.helper_rss_mib for v in whole)} MiB "
          f"peak RSS together (median)"
          f"\nA/B, all regions with parse_workers 0 (pages read in the threads): "
          f"{median_in_threads:.2f} s ({median_in_threads / slowest:.2f}x)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=4000)
    parser.add_argument("--regions", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--latency-runs", type=int, default=5)
    parser.add_argument("--recording", help="reuse (or write) the recorded answers here")
    parser.add_argument("--latency-only", action="store_true")
    args = parser.parse_args(argv)
    print(f"start: {load_average()} on {os.cpu_count()} CPUs", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="fleet-ec2-bench-"))
    if args.recording and Path(args.recording).exists():
        args.instances, regions, answers, listings = load_recording(args.recording)
        print(f"reusing {args.recording}: {args.instances} instances over {len(regions)} regions")
    else:
        regions = ALL_REGIONS[:args.regions]
        answers, listings = record(args.instances, regions, workdir)
        if args.recording:
            save_recording(args.recording, args.instances, regions, answers, listings)
    replay = Recorder(latency=0.0)
    replay.answers = answers
    paths = write_configs(workdir, replay.url, regions)
    if not args.latency_only:
        results = timed_runs(paths, replay, args.runs)
        report(args, regions, listings, results)
        if replay.misses:
            print(f"WARNING: {len(replay.misses)} requests were not recorded, e.g. "
                  f"{replay.misses[0]}")
    if args.latency_ms:
        latency_check(paths, replay, regions, workdir, args.latency_ms, args.latency_runs)
    replay.stop()
    print(f"end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
