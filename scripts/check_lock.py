"""Check that the running environment holds exactly the pins of requirements.lock.

Compares every installed distribution (but medbench itself) with the lock's pins whose
environment markers apply to this interpreter: a missing, extra or different package is named,
and the exit status is 1. `.ci/run` runs it after `make venv`.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"


def locked_pins(text: str) -> dict[str, str]:
    """The lock's name -> version pins that apply to this interpreter."""
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        (spec,) = requirement.specifier
        pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def installed() -> dict[str, str]:
    found = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    found.pop("medbench", None)
    return found


def main() -> int:
    pins, have = locked_pins(LOCK.read_text()), installed()
    problems = [f"missing: {n}=={v}" for n, v in sorted(pins.items()) if n not in have]
    problems += [f"not in the lock: {n}=={v}" for n, v in sorted(have.items()) if n not in pins]
    problems += [
        f"differs: {n}=={have[n]}, the lock pins {v}"
        for n, v in sorted(pins.items())
        if n in have and have[n] != v
    ]
    for problem in problems:
        print(f"{LOCK.name}: {problem}", file=sys.stderr)
    if problems:
        hint = "run `make venv` again (or `make lock` if you changed pyproject.toml)"
        print(hint, file=sys.stderr)
        return 1
    print(f"environment matches {LOCK.name}: {len(pins)} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
