#!/usr/bin/env python3
"""Run the test suite in stages and print a timing table.

    fleettest.py --fast            lint + unit tests on the controller venv (ansible-core 2.19)
    fleettest.py --all             everything: lint, unit and sanity on ansible-core 2.17-2.21,
                                   collection build, every molecule scenario
    fleettest.py --stage NAME ...  chosen stages (see --list)

Every stage runs even when an earlier one failed, so one run shows every finding; the exit
status is non-zero when any stage failed. Versions 2.20 and 2.21 need Python >= 3.12, so they
run in a Debian 13 controller container built here from the lab image.
"""
from __future__ import annotations

import argparse
import atexit
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
VENVS = REPO / ".venvs"
BUILD = REPO / ".build"
# One staging tree per run, so that parallel runs never share one; outside the checkout,
# because ansible-test asks git which files exist and the checkout's git ignores .build/.
STAGED = Path(tempfile.gettempdir()) / f"fleetforge-staged-{os.getpid()}" / \
    "ansible_collections" / "fleetforge" / "fleet"
HOST_CORES = {"2.17": "2.17.14", "2.18": "2.18.12", "2.19": None}  # 2.19 = the .venv's
CONTAINER_CORES = {"2.20": "2.20.6", "2.21": "2.21.5"}
UNITS_REQ = REPO / "tests" / "requirements" / "units.txt"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
sys.path.insert(0, str(REPO / "tools"))


class StageError(Exception):
    pass


_CURRENT = threading.local()  # the log file of the stage this thread runs, if any


def say(text):
    """Print to the running stage's log (parallel lanes) or to stdout."""
    out = getattr(_CURRENT, "log", None) or sys.stdout
    print(text, file=out, flush=True)


def sh(cmd, cwd=REPO, env=None, check=True):
    """Run a command into the stage's output; raise StageError on failure."""
    say(f"+ {' '.join(str(c) for c in cmd)}")
    full_env = dict(os.environ, **(env or {}))
    log = getattr(_CURRENT, "log", None)
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=full_env, check=False,
                          stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT if log else None)
    if check and proc.returncode != 0:
        raise StageError(f"exit {proc.returncode}: {' '.join(str(c) for c in cmd)}")
    return proc.returncode


# Development-only trees: not shipped in the Galaxy tarball (galaxy.yml build_ignore), so
# neither sanity-tested as collection content nor staged.
DEV_ONLY = ("tools/", "tests/tools/", "tests/vm/", "bench/", "molecule/", ".ci/", ".config/", "ansible.cfg",
            "Makefile")


def tracked_files():
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines()
            if (REPO / f).is_file() and not f.startswith(DEV_ONLY)]


def stage_collection():
    """Copy the collection (git-visible files only) under ansible_collections/fleetforge/fleet."""
    if STAGED.exists():
        shutil.rmtree(STAGED)
    atexit.register(shutil.rmtree, STAGED.parent.parent.parent, ignore_errors=True)
    for rel in tracked_files():
        dest = STAGED / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    return STAGED


# ------------------------------------------------------------------ lint
def st_yamllint():
    sh([VENV_BIN / "yamllint", "--strict", "."])


def st_ruff():
    sh([VENV_BIN / "ruff", "check", "."])


def st_ansible_lint():
    sh([VENV_BIN / "ansible-lint", "--offline", "--profile", "production"],
       env={"ANSIBLE_COLLECTIONS_PATH": str(BUILD / "collections")})


def st_changelog():
    sh([VENV_BIN / "antsibull-changelog", "lint"])


def st_argspecs():
    sh([VENV_BIN / "python", REPO / "tools" / "check_argument_specs.py"])


# ------------------------------------------------------------------ unit and sanity
def core_venv(version: str) -> Path:
    """A venv with ansible-core `version` and the unit-test requirements."""
    if HOST_CORES[version] is None:
        return REPO / ".venv"
    venv = VENVS / f"core-{version}"
    recipe = HOST_CORES[version] + UNITS_REQ.read_text()
    stamp = venv / ("stamp-" + hashlib.sha256(recipe.encode()).hexdigest()[:12])
    if not stamp.exists():
        sh([sys.executable, "-m", "venv", "--clear", venv])
        sh([venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check",
            f"ansible-core=={HOST_CORES[version]}", "-r", UNITS_REQ])
        stamp.touch()
    return venv


def unit_stage(version):
    def stage():
        venv = core_venv(version)
        # the dev tools' own tests (tests/tools) run once, on the controller venv
        paths = ["tests/unit", "tests/tools"] if HOST_CORES[version] is None else ["tests/unit"]
        sh([venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths],
           env={"ANSIBLE_COLLECTIONS_PATH": str(BUILD / "collections")})
    return stage


def sanity_stage(version):
    def stage():
        venv = core_venv(version)
        sh([venv / "bin" / "python", REPO / "tools" / "get_pip_offline.py", "--install-into-cache"])
        staged = stage_collection()
        sh([venv / "bin" / "ansible-test", "sanity", "--venv", "--python", "3.11",
            "--color", "no"], cwd=staged, env={"PATH": f"{venv / 'bin'}:{os.environ['PATH']}"})
    return stage


def controller_image() -> str:
    """Debian 13 controller image with venvs for the ansible-core versions needing Python 3.12+."""
    import fleetlab
    base = fleetlab.image_ref("debian13")
    recipe = (base + repr(sorted(CONTAINER_CORES.items())) + UNITS_REQ.read_text()).encode()
    ref = f"localhost/fleetforge-controller:debian13-{hashlib.sha256(recipe).hexdigest()[:12]}"
    if subprocess.run(["podman", "image", "exists", ref], check=False).returncode == 0:
        return ref
    fleetlab.build_image("debian13")
    name = "fleetforge-controller-build"
    subprocess.run(["podman", "rm", "-f", name], capture_output=True, check=False)
    installs = " && ".join(
        f"python3 -m venv /opt/core-{v} && /opt/core-{v}/bin/pip install -q "
        f"ansible-core=={pin} -r /units.txt" for v, pin in CONTAINER_CORES.items())
    script = ("set -e; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install "
              "-y -qq --no-install-recommends python3-venv python3-pip git rsync >/dev/null; "
              + installs)
    sh(["podman", "--runtime", "runc", "run", "--name", name, *fleetlab.ULIMITS,
        "-v", f"{CA_BUNDLE}:/host-ca.crt:ro", "-e", "PIP_CERT=/host-ca.crt",
        "-v", f"{UNITS_REQ}:/units.txt:ro", base, "bash", "-c", script])
    sh(["podman", "commit", "-q", name, ref])
    subprocess.run(["podman", "rm", "-f", name], capture_output=True, check=False)
    return ref


def container_stage(version):
    """Unit tests and sanity for one ansible-core version inside the Debian 13 controller."""
    def stage():
        ref = controller_image()
        staged = stage_collection()
        venv = f"/opt/core-{version}/bin"
        # ansible-test's venvs run pip with a reduced environment: the CA goes in pip's own config
        script = (f"set -e; printf '[global]\\ncert = /host-ca.crt\\n' > /etc/pip.conf"
                  f"; export PATH={venv}:$PATH; python /get_pip_offline.py --install-into-cache"
                  f"; cd /src/ansible_collections/fleetforge/fleet"
                  f" && python -m pytest -q -p no:cacheprovider tests/unit"
                  f" && ansible-test sanity --venv --python 3.13 --color no")
        sh(["podman", "--runtime", "runc", "run", "--rm", "--ulimit", "nofile=1024:20000",
            "--ulimit", "nproc=4096:4096",
            "-v", f"{CA_BUNDLE}:/host-ca.crt:ro", "-e", "PIP_CERT=/host-ca.crt",
            "-v", "fleetforge-ansible-test-cache:/root/.ansible",
            "-v", f"{REPO / 'tools' / 'get_pip_offline.py'}:/get_pip_offline.py:ro",
            "-e", "ANSIBLE_COLLECTIONS_PATH=/src",
            "-v", f"{staged.parent.parent.parent}:/src:rw", ref, "bash", "-c", script])
    return stage


def st_integration():
    """Controller-side tests that need the bundled collections of the `ansible` package
    (e.g. the inventory compatibility test against amazon.aws), on the .venv only."""
    if not any((REPO / "tests" / "integration").rglob("test_*.py")):
        say("no integration tests yet")
        return
    sh([VENV_BIN / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/integration"],
       env={"ANSIBLE_COLLECTIONS_PATH": f"{BUILD / 'collections'}:"
                                        f"{REPO / '.venv/lib/python3.11/site-packages'}"})


# ------------------------------------------------------------------ build
def st_build():
    """The Galaxy tarball builds, installs, and ansible-doc lists the content."""
    out = BUILD / "dist"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    staged = stage_collection()
    sh([VENV_BIN / "ansible-galaxy", "collection", "build", "--output-path", out, staged])
    tarball = next(out.glob("fleetforge-fleet-*.tar.gz"))
    target = BUILD / "installed"
    shutil.rmtree(target, ignore_errors=True)
    # only the installed tarball may be visible: not the checkout's own symlinked copy
    empty_cfg = BUILD / "empty-ansible.cfg"
    empty_cfg.write_text("[defaults]\n")
    env = {"ANSIBLE_COLLECTIONS_PATH": str(target), "ANSIBLE_CONFIG": str(empty_cfg)}
    sh([VENV_BIN / "ansible-galaxy", "collection", "install", "--offline", "--force", "-p", target,
        tarball], env=env, cwd=BUILD)
    listing = subprocess.run([VENV_BIN / "ansible-doc", "-l", "fleetforge.fleet"], env=dict(
        os.environ, **env), capture_output=True, text=True, check=False, cwd=BUILD)
    say(listing.stdout + listing.stderr)
    if listing.returncode != 0 or "fleetforge.fleet." not in listing.stdout:
        raise StageError("ansible-doc -l fleetforge.fleet listed nothing from the installed tarball")
    for kind in ("role", "inventory", "filter", "callback"):
        out = subprocess.run([VENV_BIN / "ansible-doc", "-t", kind, "-l", "fleetforge.fleet"],
                             env=dict(os.environ, **env), capture_output=True, text=True,
                             check=False, cwd=BUILD)
        say(out.stdout + out.stderr)
        if out.returncode != 0 or "fleetforge.fleet." not in out.stdout:
            raise StageError(f"ansible-doc -t {kind} -l fleetforge.fleet listed nothing")


# ------------------------------------------------------------------ molecule
def scenarios():
    return sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))


def molecule_stage(name):
    def stage():
        sh([VENV_BIN / "molecule", "test", "-s", name],
           env={"PATH": f"{VENV_BIN}:{os.environ['PATH']}",
                "ANSIBLE_COLLECTIONS_PATH": f"{BUILD / 'collections'}:"
                                            f"{REPO / '.venv/lib/python3.11/site-packages'}"})
    return stage


def st_clean():
    """Leftover lab and molecule containers from an earlier run go first."""
    sh([sys.executable, REPO / "tools" / "fleetlab.py", "clean"])


# ------------------------------------------------------------------ driver
def all_stages():
    """(name, function, kind); kind `fast` is in --fast, `lab` stages form the second lane."""
    stages = [("clean", st_clean, "first"),
              ("yamllint", st_yamllint, "fast"), ("ruff", st_ruff, "fast"),
              ("ansible-lint", st_ansible_lint, "fast"), ("argspecs", st_argspecs, "fast"),
              ("changelog", st_changelog, "fast"),
              ("unit-2.19", unit_stage("2.19"), "fast")]
    stages += [(f"unit-{v}", unit_stage(v), "full") for v in ("2.17", "2.18")]
    stages += [(f"sanity-{v}", sanity_stage(v), "full") for v in ("2.17", "2.18", "2.19")]
    stages += [(f"core-{v}", container_stage(v), "full") for v in CONTAINER_CORES]
    stages += [("integration", st_integration, "full"), ("build", st_build, "full")]
    stages += [(f"molecule-{s}", molecule_stage(s), "lab") for s in scenarios()]
    return stages


LOG_DIR = REPO / ".cache" / "test-logs"


def run_stage(name, func, capture):
    """Run one stage; with `capture`, its output goes to a log shown in full only on failure."""
    t0 = time.monotonic()
    log = None
    if capture:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = (LOG_DIR / f"{name}.log").open("w", encoding="utf-8")
        _CURRENT.log = log
    else:
        (LOG_DIR / f"{name}.log").unlink(missing_ok=True)  # not an older run's log in the summary
        print(f"\n=== stage {name} ===", flush=True)
    try:
        func()
        status = "ok"
    except (StageError, OSError, subprocess.CalledProcessError) as exc:
        status = "FAILED"
        say(f"stage {name} failed: {exc}")
    finally:
        _CURRENT.log = None
        if log:
            log.close()
    secs = time.monotonic() - t0
    if capture:
        text = (LOG_DIR / f"{name}.log").read_text(encoding="utf-8", errors="replace")
        if status != "ok":
            tail = "\n".join(text.splitlines()[-300:])
            print(f"\n=== stage {name} FAILED after {secs:.0f}s; last lines of "
                  f"{LOG_DIR.relative_to(REPO)}/{name}.log ===\n{tail}", flush=True)
        else:
            print(f"stage {name}: ok ({secs:.0f}s)", flush=True)
    return name, status, secs


FAILURE_MARKERS = re.compile(r"fatal:|FAILED!|ERROR|Error:|error:|LabError|fleetlab:|"
                             r"AssertionError|^E  |unreachable=[1-9]|failed=[1-9]|Traceback")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def failure_lines(log: Path, limit: int = 12, width: int = 240) -> list[str]:
    """The last lines of a stage log that say why it failed, for the end of the run (CI
    shows the end of the output, where the full tails printed earlier may be cut)."""
    if not log.exists():
        return ["(no log)"]
    lines = [ANSI.sub("", line).strip() for line in
             log.read_text(encoding="utf-8", errors="replace").splitlines()]
    picked = [line for line in lines if FAILURE_MARKERS.search(line)] or lines
    return [line[:width] for line in picked[-limit:]]


def run_lanes(chosen, parallel):
    """`first` stages alone, then the check lane and the lab lane side by side."""
    results = [run_stage(n, f, False) for n, f, k in chosen if k == "first"]
    checks = [(n, f) for n, f, k in chosen if k in ("fast", "full")]
    lab = [(n, f) for n, f, k in chosen if k == "lab"]
    if not parallel or not checks or not lab:
        return results + [run_stage(n, f, parallel) for n, f in checks + lab]

    def lane(items, jobs=1):
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            return list(pool.map(lambda item: run_stage(item[0], item[1], True), items))

    # molecule scenarios wait on SSH, apt and systemd much of the time: LAB_JOBS of them
    # share the lab lane (each on its own lab network and ports)
    lab_jobs = int(os.environ.get("FLEETTEST_LAB_JOBS", "2"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(lane, checks), pool.submit(lane, lab, lab_jobs)]
        for future in futures:
            results += future.result()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--fast", action="store_true")
    group.add_argument("--all", action="store_true")
    group.add_argument("--stage", nargs="+")
    group.add_argument("--list", action="store_true")
    parser.add_argument("--serial", action="store_true",
                        help="one stage at a time, output streamed (default: the check lane and "
                             "the molecule lane run side by side, output in .cache/test-logs/)")
    args = parser.parse_args(argv)
    stages = all_stages()
    if args.list:
        for name, _, kind in stages:
            print(f"{name}\t{kind}")
        return 0
    if args.fast:
        chosen = [s for s in stages if s[2] == "fast"]
    elif args.all:
        chosen = stages
    else:
        known = {s[0] for s in stages}
        unknown = [n for n in args.stage if n not in known]
        if unknown:
            parser.error(f"unknown stage(s) {', '.join(unknown)}; see --list")
        chosen = [s for s in stages if s[0] in args.stage]
    started = time.monotonic()
    results = run_lanes(chosen, parallel=not args.serial)
    total = time.monotonic() - started
    print("\n| stage | result | seconds |\n|---|---|---:|")
    for name, status, secs in results:
        print(f"| {name} | {status} | {secs:.0f} |")
    print(f"| total | {'ok' if all(r[1] == 'ok' for r in results) else 'FAILED'} | {total:.0f} |")
    failed = [r[0] for r in results if r[1] != "ok"]
    for name in failed:
        log = LOG_DIR / f"{name}.log"
        if not log.exists():  # streamed: its output is above, under "=== stage {name} ==="
            print(f"\n{name}: why it failed is in its output above (=== stage {name} ===)")
            continue
        print(f"\n{name}: why it failed (whole log in {log.relative_to(REPO)})")
        for line in failure_lines(log):
            print(f"  {line}")
    print(f"\nstages: {len(results) - len(failed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
