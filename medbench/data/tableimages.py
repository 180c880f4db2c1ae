"""Images read from tables, stored once by content in medbench's home folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from medbench.home import medbench_home

MAX_IMAGE_BYTES = 64 << 20
"""Bytes of one image in a table."""
IMAGES_FOLDER = "table-images"
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)


def table_images_dir() -> Path:
    """Where images read from tables are stored, by content."""
    return medbench_home() / IMAGES_FOLDER


def image_suffix(data: bytes) -> str | None:
    """The file suffix of an image's bytes by their signature (None: not a known format)."""
    for magic, suffix in _MAGIC:
        if data.startswith(magic):
            return suffix
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return None


def store_image(data: bytes, folder: Path) -> tuple[Path, str]:
    """The content-addressed file holding `data` (written once) and its sha256."""
    sha = hashlib.sha256(data).hexdigest()
    suffix = image_suffix(data) or ".bin"
    path = folder / f"{sha}{suffix}"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{sha}.{os.getpid()}.partial"
        partial.write_bytes(data)
        os.replace(partial, path)
    return path, sha
