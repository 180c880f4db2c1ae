"""Images of the bundled sample on the site: find them, copy them beside the pages.

Only the bundled sample is copied: its README lists a licence for each task that allows
redistribution. Images of other data are named by their id only.
"""

from __future__ import annotations

import re
from pathlib import Path

from medbench.spec.loading import SpecSet

MAX_THUMBNAIL_BYTES = 1 << 20
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def sample_files(specs: SpecSet, task: str) -> dict[str, tuple[Path, str]]:
    """sample id -> (image file, label) of a task's bundled sample (empty without one)."""
    from medbench.data import load_samples
    from medbench.errors import MedbenchError

    if task not in specs.tasks or "sample" not in specs.tasks[task].data:
        return {}
    try:
        samples = load_samples(specs.tasks[task], "sample", specs.root, hasher=lambda _: "")
    except MedbenchError:
        return {}
    return {s.id: (s.path, s.label) for s in samples}


def thumbnail(path: Path | None, task: str, sample: str, files: dict[str, bytes]) -> str | None:
    """Copy an image into the site's `img/` (once) and return its path from the root."""
    if path is None or not path.is_file() or path.stat().st_size > MAX_THUMBNAIL_BYTES:
        return None
    suffix = path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png") else None
    if suffix is None:
        return None
    name = f"img/{task}/{_UNSAFE.sub('_', sample.lower())}{suffix}"
    files.setdefault(name, path.read_bytes())
    return name
