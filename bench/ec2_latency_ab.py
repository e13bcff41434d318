#!/usr/bin/env python3
"""A/B of fleetforge.fleet.ec2's fetch time with latency added, for two or more code versions.

Serves the answers recorded by bench/ec2_inventory.py (--recording FILE) with --latency-ms
added to every request, and runs `ansible-inventory --graph -vvv` interleaved for each variant:
all regions together, then two single regions (rotating, so that after 4 rounds every region
ran alone twice). Prints, per variant, the median fetch time of all regions (the plugin's own
`fetched ... in` line), the slowest single-region median and their ratio, and every run, with
the medians of the CPU the all-region fetch took in the parent and in its page reader processes
(steadier than wall time on a machine whose speed drifts).

    .venv/bin/python bench/ec2_latency_ab.py --recording /work/benchrec/ec2-4000.json \
        --rounds 10 BEFORE=/tmp/before NOW=.build/collections THREE=.build/collections@parse_workers=3

A variant is NAME=DIR[@option=value,...]: DIR holds ansible_collections/fleetforge/fleet (a
git worktree of another commit, for instance); the options are added to the all-regions
configuration (integers). Variants of one run share the machine's moment: compare them with
each other, not with another run's (this machine's speed drifts by more than the differences).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ec2_inventory as bench  # this directory, put on sys.path above


def variant(text):
    name, _, rest = text.partition("=")
    directory, _, options = rest.partition("@")
    if not name or not directory:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR[@option=value,...]: {text!r}")
    try:
        overrides = {key: int(value) for key, value in
                     (item.split("=", 1) for item in options.split(",") if item)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"options must be option=integer: {text!r}") from None
    return name, str(Path(directory).resolve()), overrides


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recording", required=True, help="written by bench/ec2_inventory.py")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("variants", nargs="+", type=variant)
    args = parser.parse_args(argv)
    _instances, regions, answers, _listings = bench.load_recording(args.recording)
    workdir = Path(tempfile.mkdtemp(prefix="fleet-ab-"))
    replay = bench.Recorder(latency=args.latency_ms / 1000.0)
    replay.answers = answers
    common = json.loads(bench.write_configs(workdir, replay.url, regions)[("fleet", False)]
                        .read_text())
    singles = {}
    for region in regions:
        singles[region] = workdir / f"single-{region}.fleet_ec2.yml"
        singles[region].write_text(json.dumps(dict(common, regions=[region])))
    everything, alone = {}, {}
    for name, _directory, overrides in args.variants:
        everything[name] = workdir / f"all-{name}.fleet_ec2.yml"
        everything[name].write_text(json.dumps(dict(common, **overrides)))
        alone[name] = {region: [] for region in regions}
    runs = {name: [] for name, _, _ in args.variants}
    print(f"start: {bench.load_average()}", flush=True)
    for round_ in range(args.rounds):
        for name, directory, _overrides in args.variants:
            os.environ["FLEET_BENCH_COLLECTIONS"] = directory
            runs[name].append(bench.fetch_seconds(everything[name]))
            for region in (regions[round_ % len(regions)],
                           regions[(round_ + len(regions) // 2) % len(regions)]):
                alone[name][region].append(bench.fetch_seconds(singles[region]).wall)
        print(f"  round {round_ + 1}/{args.rounds}: "
              + ", ".join(f"{name} {runs[name][-1].wall:.3f} s" for name in runs)
              + f" ({bench.load_average()})", flush=True)
    replay.stop()
    print()
    for name, values in runs.items():
        together = statistics.median(value.wall for value in values)
        medians = [statistics.median(times) for times in alone[name].values() if times]
        slowest = max(medians)
        print(f"{name}: all {len(regions)} regions {together:.3f} s, slowest single region "
              f"{slowest:.3f} s (median of the singles {statistics.median(medians):.3f} s), "
              f"ratio {together / slowest:.2f}x; CPU of the all-region fetch (medians): parent "
              f"{statistics.median(value.cpu for value in values):.3f} s, page readers "
              f"{statistics.median(value.helper_cpu for value in values):.3f} s; all-region runs: "
              + ", ".join(f"{value.wall:.3f}" for value in values))
    print(f"end: {bench.load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
