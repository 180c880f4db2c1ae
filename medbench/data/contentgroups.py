"""Content groups: images that are rotations or flips of one another, found by a perceptual hash.

A data set augmented by its authors (LC25000 made 15,000 images from 750 originals) holds copies
that no file name reveals. The hash: the image in greyscale, resized to 64 x 64 (box filter), its
2-D DCT, the 16 x 16 lowest frequencies thresholded at their median (the DC term left out of the
median): 256 bits. It is taken of all 8 rotations by multiples of 90 degrees and flips (the
dihedral group; resizing a square grid commutes with them), so the distance of two images is the
least Hamming distance between the first's hash and any of the second's 8. Two images are copies
within `MAX_DISTANCE` bits, and groups are the connected sets of copies, each named by its first
sample id.

Why 24 of 256 bits: on the 176 sample images of `data/sample/` rotated or flipped and re-encoded
as JPEG at quality 60 to 90 (or upscaled 2x), a copy was at most 16 bits from its original; two
different images were at least 50 bits apart, except three brain MRI slices that are themselves
a flipped copy and near-copies (`notumor/Te-no_0164`, `_0253`, `_0259`, at 6 to 12 bits), which
are grouped. Copies rotated by other angles, cropped or rescaled in one direction are not found.

Hashes are stored by image sha256 and `HASH_VERSION` in `<medbench home>/content_hashes.sqlite`,
so a rerun reads no image. Comparing n images costs n^2 / 2 comparisons (the paper's 750 in a
fraction of a second; 5,000 random hashes took 2 s on a busy 2-core machine).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from medbench.data.images import ImageError, load_image
from medbench.home import medbench_home

HASH_VERSION = 1
"""Part of every stored hash's key: bump when the hash changes."""
SIDE = 64
"""The greyscale grid the DCT is taken of."""
KEEP = 16
"""The lowest KEEP x KEEP frequencies make the hash (256 bits)."""
MAX_DISTANCE = 24
"""Two images whose hashes are at most this many bits apart are copies."""
STORE_NAME = "content_hashes.sqlite"
_WORDS = KEEP * KEEP // 64


def dihedral_hashes(image: Image.Image) -> NDArray[np.uint64]:
    """The image's hash under each of the 8 rotations and flips: (8, 4) uint64, identity first."""
    from scipy.fft import dctn

    grid = np.asarray(
        image.convert("L").resize((SIDE, SIDE), Image.Resampling.BOX), dtype=np.float64
    )
    rows = []
    for turns in range(4):
        turned = np.rot90(grid, turns)
        for view in (turned, turned.T):
            low = dctn(view, norm="ortho")[:KEEP, :KEEP].ravel()
            bits = low > np.median(low[1:])
            rows.append(np.packbits(bits).view(">u8").astype(np.uint64))
    return np.stack(rows)


def distance(first: NDArray[np.uint64], second: NDArray[np.uint64]) -> int:
    """Bits between `first`'s hash and the nearest of `second`'s 8."""
    return int(np.bitwise_count(first[0] ^ second).sum(axis=-1).min())


def group_copies(ids: Sequence[str], hashes: Sequence[NDArray[np.uint64] | None]) -> list[str]:
    """Each id's group: the first (smallest) id of its connected set of copies; an id without
    a hash (an unreadable image) is its own group."""
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    known = [i for i, h in enumerate(hashes) if h is not None]
    if known:
        table = np.stack([hashes[i] for i in known])  # type: ignore[misc]
        # A pair within MAX_DISTANCE bits of 256 is within it in the first 64 too: those pick
        # the candidates (about a quarter of random pairs), the whole hash decides.
        head = np.ascontiguousarray(table[:, :, 0])
        for at, i in enumerate(known[:-1]):
            near = np.bitwise_count(head[at, 0] ^ head[at + 1 :]).min(axis=-1)
            candidates = at + 1 + np.flatnonzero(near <= MAX_DISTANCE)
            bits = np.bitwise_count(table[at, 0] ^ table[candidates]).sum(axis=-1).min(axis=-1)
            for other in candidates[bits <= MAX_DISTANCE]:
                a, b = root(i), root(known[int(other)])
                parent[max(a, b)] = min(a, b)
    first: dict[int, str] = {}
    for i in sorted(range(len(ids)), key=lambda i: ids[i]):
        first.setdefault(root(i), ids[i])
    return [first[root(i)] for i in range(len(ids))]


class HashStore:
    """Content hashes by image sha256, in SQLite (WAL, so several processes may share it)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS hashes (sha256 TEXT NOT NULL, version INTEGER NOT NULL, "
            "hashes BLOB NOT NULL, PRIMARY KEY (sha256, version))"
        )

    def close(self) -> None:
        self._db.close()

    def get_many(self, shas: Sequence[str]) -> dict[str, NDArray[np.uint64]]:
        """The stored hashes of these images (of this `HASH_VERSION`); missing are absent."""
        found: dict[str, NDArray[np.uint64]] = {}
        unique = sorted(set(shas))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            query = (
                "SELECT sha256, hashes FROM hashes WHERE version = ? AND sha256 IN "
                f"({','.join('?' * len(chunk))})"
            )
            for sha, blob in self._db.execute(query, [HASH_VERSION, *chunk]):
                found[sha] = np.frombuffer(blob, dtype="<u8").reshape(8, _WORDS).astype(np.uint64)
        return found

    def put_many(self, rows: dict[str, NDArray[np.uint64]]) -> None:
        """Store hashes by image sha256, in one transaction."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?)",
                [(sha, HASH_VERSION, h.astype("<u8").tobytes()) for sha, h in rows.items()],
            )


def _hash_file(path: Path) -> NDArray[np.uint64] | None:
    try:
        return dihedral_hashes(load_image(path))
    except ImageError:
        return None


def group_by_content(
    images: Sequence[tuple[str, Path, str | None]], store_path: Path | None = None
) -> list[str]:
    """The content group of each (id, path, sha256 or None) image (see the module docstring);
    an image without a sha256 (unreadable) is its own group."""
    store = HashStore(store_path or medbench_home() / STORE_NAME)
    try:
        known = store.get_many([sha for _, _, sha in images if sha is not None])
        new: dict[str, NDArray[np.uint64]] = {}
        for _, path, sha in images:
            if sha is not None and sha not in known and sha not in new:
                found = _hash_file(path)
                if found is not None:
                    new[sha] = found
        store.put_many(new)
    finally:
        store.close()
    known.update(new)
    hashes = [known.get(sha) if sha is not None else None for _, _, sha in images]
    return group_copies([image_id for image_id, _, _ in images], hashes)


__all__ = [
    "HASH_VERSION",
    "MAX_DISTANCE",
    "STORE_NAME",
    "HashStore",
    "dihedral_hashes",
    "distance",
    "group_by_content",
    "group_copies",
]
