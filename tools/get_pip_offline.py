#!/usr/bin/env python3
"""Stand-in for the get-pip.py bootstrap script that `ansible-test --venv` downloads.

ansible-test fetches get-pip.py from ci-files.testing.ansible.com, which this machine cannot
reach. This stand-in does the same job from what is reachable: pip from the interpreter's own
ensurepip wheel, then the pinned pip (and whatever else was asked) from PyPI.

    python get_pip_offline.py --install-into-cache
        copies this file to ~/.ansible/test/cache/get_pip_<version>.py for the pip version the
        running interpreter's ansible-test asks for (run it with each ansible-core venv).
"""
import os
import re
import shutil
import subprocess
import sys

DROP = ("--no-setuptools", "--no-wheel")


def install_into_cache():
    import ansible_test

    source = os.path.join(os.path.dirname(ansible_test.__file__), "_internal",
                          "python_requirements.py")
    with open(source, encoding="utf-8") as handle:
        match = re.search(r"pip='([0-9.]+)'", handle.read())
    if not match:
        sys.exit("cannot find the pip version ansible-test bootstraps in " + source)
    cache = os.path.expanduser("~/.ansible/test/cache")
    os.makedirs(cache, exist_ok=True)
    target = os.path.join(cache, "get_pip_{}.py".format(match.group(1).replace(".", "_")))
    shutil.copyfile(os.path.abspath(__file__), target)
    print(f"pip {match.group(1)} bootstrap stand-in: {target}")


def bootstrap(argv):
    args = [a for a in argv if a not in DROP]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"],
                          stdout=subprocess.DEVNULL)
    subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
    if "--no-setuptools" in argv:
        subprocess.call([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "setuptools"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    if sys.argv[1:] == ["--install-into-cache"]:
        install_into_cache()
    else:
        bootstrap(sys.argv[1:])
