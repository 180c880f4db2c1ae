"""Fail a pull request that changes the remote-code allow-list together with a spec.

A model on `specs/allow_remote_code.txt` may set `trust_remote_code: true`, which runs code
from its repository on every machine that evaluates it. The list is owned by the maintainers
(`.github/CODEOWNERS`); a pull request that adds a model *and* allow-lists it in one go would
let a stranger approve their own code. Allow-listing is a pull request of its own.

    python scripts/check_allow_list.py --base "$BASE_SHA"
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence

ALLOW_LIST = "specs/allow_remote_code.txt"


def problems(changed: Sequence[str]) -> list[str]:
    """What is wrong with a pull request that changes these paths (empty: nothing)."""
    if ALLOW_LIST not in changed:
        return []
    specs = sorted(p for p in changed if p.startswith("specs/") and p != ALLOW_LIST)
    if not specs:
        return []
    shown = ", ".join(specs[:5]) + (", ..." if len(specs) > 5 else "")
    return [
        f"{ALLOW_LIST}: changed together with {len(specs)} spec file(s) ({shown}). "
        "Allow-list a model in a pull request of its own, reviewed by a maintainer."
    ]


def changed_paths(base: str) -> list[str]:
    """Paths changed between the merge base of `base` and HEAD (renames count both sides)."""
    out = subprocess.run(
        ["git", "diff", "--name-only", "--no-renames", f"{base}...HEAD"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in out.stdout.splitlines() if line]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="The pull request's base commit.")
    args = parser.parse_args(argv)
    found = problems(changed_paths(args.base))
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
