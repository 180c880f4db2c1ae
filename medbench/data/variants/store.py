"""The derived-image store: transformed images written once, named by their content hash.

`<home>/images/<sha[:2]>/<sha>.png` holds each image (a PNG encoded with fixed settings and no
metadata, so the same pixels give the same bytes and hash in every process), and
`<home>/images/index/<k>` the hash derived from an original for a variant, `k` hashing the
original's content hash and the variant's parameters: planning again reads one small file per
image instead of transforming it again.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medbench.atomic import write_bytes_atomic, write_text_atomic
from medbench.data.canonical import canonical_json
from medbench.data.images import load_image
from medbench.home import medbench_home
from medbench.spec import ImageRef, ImageVariantSpec

IMAGES_FOLDER = "images"
STORE_FORMAT = 1
"""Part of every index entry's name: a change to how images are derived bumps it."""
_SHA = re.compile(r"^[0-9a-f]{64}$")


def images_dir() -> Path:
    """The one folder derived images live in, whatever answer cache a command uses."""
    return medbench_home() / IMAGES_FOLDER


def encode_png(image: Image.Image) -> bytes:
    """`image` as PNG bytes that depend on its pixels only (no metadata, fixed settings)."""
    plain = Image.fromarray(np.asarray(image.convert("RGB")), "RGB")
    buffer = io.BytesIO()
    plain.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def transform_payload(spec: ImageVariantSpec, seed: int | None) -> dict[str, Any]:
    """The transform and its parameters (the seed resolved), as recorded with each answer."""
    payload = spec.model_dump(mode="json", exclude={"id"})
    if "seed" in payload:
        payload["seed"] = seed
    return payload


class ImageStore:
    """Derived images under `root`, each written once (atomically) and found by its hash."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, sha256: str) -> Path:
        """Where the image of content hash `sha256` is stored."""
        return self.root / sha256[:2] / f"{sha256}.png"

    def _holds(self, sha256: str) -> bool:
        """Whether the stored image of `sha256` is there with exactly those bytes (a file
        changed or cut short since is derived and written again)."""
        path = self.path_of(sha256)
        return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256

    def _index(self, original_sha256: str, transform: dict[str, Any]) -> Path:
        name = canonical_json({"v": STORE_FORMAT, "image": original_sha256, "t": transform})
        return self.root / "index" / hashlib.sha256(name.encode()).hexdigest()

    def derive(
        self,
        original: ImageRef,
        transform: dict[str, Any],
        make: Callable[[Image.Image], Image.Image],
    ) -> ImageRef:
        """The variant of `original` that `make(image) -> image` computes, stored once.

        `transform` names it (see `transform_payload`); an index entry whose image is present
        is used without decoding the original. Raises ImageError for an unreadable original."""
        index = self._index(original.sha256, transform)
        known = index.read_text(encoding="utf-8").strip() if index.is_file() else ""
        if _SHA.fullmatch(known) and self._holds(known):
            return ImageRef(str(self.path_of(known)), known)
        data = encode_png(make(load_image(original.path)))
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.path_of(sha256)
        if not self._holds(sha256):
            write_bytes_atomic(target, data)
        write_text_atomic(index, sha256 + "\n")
        return ImageRef(str(target), sha256)
