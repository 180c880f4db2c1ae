"""Check that the running environment holds exactly the pins of requirements.lock.

Compares every installed distribution (but medbench itself) with the lock's pins whose
environment markers apply to this interpreter: a missing, extra or different package is named,
and the exit status is 1. `.ci/run` runs it after `make venv`. An environment whose torch is a
CUDA build (`make venv GPU=cu130`) is held to the CUDA lock whose torch pin it has
(`requirements-cu130.lock`: torch and its CUDA runtime) and the main lock's other pins.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"


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


def expected_pins(torch: str | None, root: Path = ROOT) -> tuple[dict[str, str], list[Path]]:
    """The pins an environment whose torch has version `torch` must hold, and the locks they
    come from: the main lock's, with a CUDA lock's laid over them where torch is not the CPU
    build and a CUDA lock pins exactly that torch."""
    locks = [root / LOCK.name]
    pins = locked_pins(locks[0].read_text())
    if torch is not None and not torch.endswith("+cpu"):
        for cuda_lock in sorted(root.glob("requirements-cu*.lock")):
            cuda = locked_pins(cuda_lock.read_text())
            if cuda.get("torch") == torch:
                pins.update(cuda)
                locks.append(cuda_lock)
                break
    return pins, locks


def installed() -> dict[str, str]:
    found = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    found.pop("medbench", None)
    return found


def main() -> int:
    have = installed()
    pins, locks = expected_pins(have.get("torch"))
    problems = [f"missing: {n}=={v}" for n, v in sorted(pins.items()) if n not in have]
    problems += [f"not in the lock: {n}=={v}" for n, v in sorted(have.items()) if n not in pins]
    problems += [
        f"differs: {n}=={have[n]}, the lock pins {v}"
        for n, v in sorted(pins.items())
        if n in have and have[n] != v
    ]
    names = " + ".join(lock.name for lock in locks)
    for problem in problems:
        print(f"{names}: {problem}", file=sys.stderr)
    if problems:
        hint = "run `make venv` again (or `make lock` if you changed pyproject.toml)"
        print(hint, file=sys.stderr)
        return 1
    print(f"environment matches {names}: {len(pins)} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
