#!/usr/bin/env python3
"""Check that every role's defaults/main.yml and meta/argument_specs.yml agree.

For each role: the `main` entry point documents exactly the variables that defaults/main.yml
sets, with the same default values, and every option has a description. Exit 1 with one line
per disagreement.
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def load(path: Path):
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def check_role(role: Path) -> list[str]:
    problems = []
    defaults_file = role / "defaults" / "main.yml"
    spec_file = role / "meta" / "argument_specs.yml"
    if not spec_file.exists():
        return [f"{role.name}: meta/argument_specs.yml is missing"]
    defaults = load(defaults_file) if defaults_file.exists() else {}
    entry = (load(spec_file).get("argument_specs") or {}).get("main")
    if entry is None:
        return [f"{role.name}: argument_specs has no 'main' entry point"]
    options = entry.get("options") or {}
    for name in sorted(set(defaults) - set(options)):
        problems.append(f"{role.name}: {name} is in defaults/main.yml but not in argument_specs")
    for name, spec in sorted(options.items()):
        if not spec.get("description"):
            problems.append(f"{role.name}: {name} has no description in argument_specs")
        if name not in defaults:
            if not spec.get("required"):
                problems.append(f"{role.name}: {name} is in argument_specs but not in "
                                f"defaults/main.yml (and is not required)")
            continue
        if "default" not in spec:
            problems.append(f"{role.name}: {name} has no default in argument_specs "
                            f"(defaults/main.yml: {defaults[name]!r})")
        elif spec["default"] != defaults[name]:
            problems.append(f"{role.name}: {name} default differs: argument_specs "
                            f"{spec['default']!r} vs defaults/main.yml {defaults[name]!r}")
    for name in options:
        if not name.startswith(role.name + "_"):
            problems.append(f"{role.name}: public variable {name} does not start with "
                            f"'{role.name}_'")
    return problems


def main(argv=None) -> int:
    roles_dir = Path(argv[0]) if argv else REPO / "roles"
    roles = sorted(p for p in roles_dir.iterdir() if p.is_dir()) if roles_dir.exists() else []
    problems = [p for role in roles for p in check_role(role)]
    for problem in problems:
        print(problem)
    print(f"argument specs: {len(roles)} role(s) checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
