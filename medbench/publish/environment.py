"""Where a record was made: medbench's commit, the installed packages and the machine."""

from __future__ import annotations

import functools
import hashlib
import platform
import shutil
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
"""A sha256 in hex (the record model uses the same type)."""


class EnvironmentInfo(BaseModel):
    """The machine and packages a record was made with."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    python: str
    platform: str
    torch: str | None
    transformers: str | None
    tokenizers: str | None = None
    pillow: str | None = None
    numpy: str | None = None
    accelerate: str | None = None
    packages_sha256: Sha256 | None = None
    """sha256 of every installed distribution's sorted `name==version` lines: equal for two
    records made in the same locked environment (`make venv`)."""
    gpu_name: str | None
    gpu_driver: str | None


def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


def _git(*args: str) -> str | None:
    """What `git ARGS` prints in the medbench source tree, or None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_commit() -> str | None:
    """The commit of the medbench source tree, or None outside a git checkout."""
    return _git("rev-parse", "HEAD")


def git_dirty() -> bool | None:
    """Whether tracked files of the medbench source tree have uncommitted changes (None outside
    a git checkout): a result made from edited code is not the commit it names. The published
    records themselves (`leaderboard/`) do not count: publishing writes them one by one."""
    status = _git(
        "status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)leaderboard"
    )
    return None if status is None else bool(status)


def _package(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _gpu() -> tuple[str | None, str | None]:
    if shutil.which("nvidia-smi") is None:
        return None, None
    query = ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]
    try:
        done = subprocess.run(query, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None, None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or "," not in lines[0]:
        return None, None
    name, driver = (part.strip() for part in lines[0].rsplit(",", 1))
    return name, driver


@functools.lru_cache(maxsize=1)
def installed_packages_sha256() -> str:
    """sha256 of the sorted `name==version` lines of every installed distribution (read once
    per process: publishing five records read every package's metadata five times)."""
    names = {
        f"{d.metadata['Name'].lower().replace('_', '-')}=={d.version}"
        for d in metadata.distributions()
    }
    lines = sorted(names)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def collect_environment() -> EnvironmentInfo:
    """Versions and GPU of this machine (package metadata only: torch is never imported)."""
    gpu_name, gpu_driver = _gpu()
    return EnvironmentInfo(
        python=platform.python_version(),
        platform=platform.platform(),
        torch=_package("torch"),
        transformers=_package("transformers"),
        tokenizers=_package("tokenizers"),
        pillow=_package("pillow"),
        numpy=_package("numpy"),
        accelerate=_package("accelerate"),
        packages_sha256=installed_packages_sha256(),
        gpu_name=gpu_name,
        gpu_driver=gpu_driver,
    )
