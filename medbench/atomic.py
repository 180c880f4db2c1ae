"""Writing atomically: a small file, or a whole folder swapped in, under a lock; readers see
the old content or the new, never half."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock for `folder` while the body runs (a lock file beside it,
    `.<name>.lock`): a second process that asks for it waits until the first is done."""
    import fcntl

    folder.parent.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f".{folder.name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def staging_folder(folder: Path) -> Path:
    """A new empty folder beside `folder` to build its next content in (same file system, so
    `swap_folder` can rename it into place)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.new-"))


def swap_folder(staged: Path, folder: Path) -> None:
    """Put the complete folder `staged` in place of `folder` by renames, then delete the old
    content: until the swap, `folder` is the old tree, whole; it is never half written."""
    old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old-")) / "tree"
    if folder.exists():
        os.replace(folder, old)
    try:
        os.replace(staged, folder)
    except BaseException:
        if old.exists():
            os.replace(old, folder)  # the old tree back in place, whole
        raise
    finally:
        shutil.rmtree(old.parent, ignore_errors=True)
