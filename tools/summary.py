#!/usr/bin/env python3
"""Print a short per-host summary from an ansible-playbook log (the PLAY RECAP lines)."""
import re
import sys

RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
                   r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)")


def summarise(lines):
    rows = [m.groupdict() for m in map(RECAP.match, lines) if m]
    if not rows:
        return "no PLAY RECAP found", 1
    out = ["", f"{'host':<24} {'ok':>4} {'changed':>8} {'failed':>7} {'unreachable':>12}  state"]
    bad = 0
    for r in rows:
        state = "converged" if r["changed"] == "0" else "changed"
        if r["failed"] != "0" or r["unreachable"] != "0":
            state, bad = "FAILED", bad + 1
        out.append(f"{r['host']:<24} {r['ok']:>4} {r['changed']:>8} {r['failed']:>7} "
                   f"{r['unreachable']:>12}  {state}")
    return "\n".join(out), 1 if bad else 0


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        text, code = summarise(handle.read().splitlines())
    print(text)
    sys.exit(code)
