"""The files published beside a record, read the one way that `verify` and `site build` share.

A sidecar (the answers, the option scores) is read only if it is a file of its own (not a
link: one to `/dev/zero` would be read until memory runs out), within the size limit, and of
the hash its record names; a map or diagram only as `reading.read_maps` rebuilds it. Whatever
`verify` refuses, the site build refuses too, because both call these.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from medbench.errors import RecordError
from medbench.publish.reading import read_maps
from medbench.publish.record import MAPS_SUFFIX, RELIABILITY_SUFFIX
from medbench.score import MAX_SIDECAR_BYTES, read_answers_csv


def sidecar_bytes(folder: Path, name: str, sha256: str | None) -> bytes:
    """A sidecar's bytes: not a link, bounded, and of the recorded hash (when one is given);
    RecordError, ValueError or OSError otherwise."""
    path = folder / name
    if path.is_symlink():
        raise RecordError(f"sidecar.path: {name} is a link; a sidecar is a file of its own")
    if path.exists() and not path.is_file():
        raise RecordError(f"sidecar.path: {name} is not a plain file")
    with path.open("rb") as f:
        raw = f.read(MAX_SIDECAR_BYTES + 1)
    if len(raw) > MAX_SIDECAR_BYTES:
        raise ValueError(f"it is over {MAX_SIDECAR_BYTES // (1024 * 1024)} MiB")
    actual = hashlib.sha256(raw).hexdigest()
    if sha256 is not None and actual != sha256:
        raise RecordError(f"sidecar.sha256: recorded {sha256}, the file {name} has {actual}")
    return raw


def read_sidecar(folder: Path, name: str, sha256: str | None) -> pd.DataFrame:
    """The answer rows of a sidecar read by `sidecar_bytes`."""
    return read_answers_csv(sidecar_bytes(folder, name, sha256))


def figure_problems(record_path: Path) -> list[str]:
    """Why the site build would refuse the maps or diagrams beside a record (none: it would
    not), by the site's own reader, `read_maps`."""
    problems = []
    for suffix in (MAPS_SUFFIX, RELIABILITY_SUFFIX):
        try:
            read_maps(record_path, suffix)
        except RecordError as e:
            problems.append(str(e))
    return problems
