"""The derived-image store: transformed images written once, found by their recipe.

A derived image is named, before it exists, by its **recipe**: the hash of its source image's
content hash, the transform and its parameters, `DERIVE_VERSION` (the transform code's version)
and the versions of Pillow and numpy (Pillow's encoders and filters change between releases).
Plans key jobs by the recipe, so planning never decodes an image; the run derives the images
its missing answers need into `<home>/images/derived/<r[:2]>/<r>.pnm` (raw netpbm: a grey
image stays grey) and records the bytes' sha256 in `<home>/images/recipes/<r>`: a
recipe derived again (a file lost or cut short) must give the same bytes, else it is an error.
The SSIM between the derived image and its source, both as the model receives them, is kept
in `<home>/images/ssim/<r[:2]>/<r>`: the results show it beside each variant's scores.

`<home>/images/index/<k>` and `<home>/images/<sha[:2]>/<sha>.png` are the layout before recipes
(images named by their bytes' hash, found through an index of the original's hash and the
transform): read only to carry the answers of a warm cache over to the recipe keys.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medbench.atomic import write_bytes_atomic, write_text_atomic
from medbench.data.canonical import canonical_json
from medbench.data.images import ImageError, load_image
from medbench.errors import MedbenchError
from medbench.home import medbench_home
from medbench.spec import ImageRef, ImageVariantSpec

IMAGES_FOLDER = "images"
STORE_FORMAT = 1
"""Part of every (pre-recipe) index entry's name."""
DERIVE_VERSION = 2
"""The transform code's version, part of every recipe: bump it when a transform (or the PNG
encoding) changes the bytes it makes. 2: grey images derived and stored grey (netpbm, not
PNG), Gaussian noise drawn as rounded integers."""
_SHA = re.compile(r"^[0-9a-f]{64}$")
_FULL = (errno.ENOSPC, errno.EDQUOT)


class StoreFullError(MedbenchError):
    """The disk (or quota) of the store's folder ran out while an image was written."""

    def __init__(self, folder: Path, size: int) -> None:
        self.folder = folder
        self.size = size
        """The bytes of the image that did not fit."""
        super().__init__(f"no space left in {folder} for a derived image of {size} bytes")


def images_dir() -> Path:
    """The one folder derived images live in, whatever answer cache a command uses."""
    return medbench_home() / IMAGES_FOLDER


def encode_png(image: Image.Image, *, compress_level: int = 6) -> bytes:
    """`image` as PNG bytes that depend on its pixels only (no metadata, fixed settings); an
    `L` image stays grey (it decodes to the same RGB pixels), any other becomes RGB."""
    mode = "L" if image.mode == "L" else "RGB"
    plain = Image.fromarray(np.asarray(image.convert(mode)), mode)
    buffer = io.BytesIO()
    plain.save(buffer, format="PNG", optimize=False, compress_level=compress_level)
    return buffer.getvalue()


def encode_pnm(image: Image.Image) -> bytes:
    """`image` as binary netpbm bytes (PGM for an `L` image, else PPM): a header and the raw
    pixels, so writing costs a copy (PNG's filters and zlib took most of a derivation's time).
    The bytes depend on the pixels only."""
    mode = "L" if image.mode == "L" else "RGB"
    plain = image if image.mode == mode else image.convert(mode)
    width, height = plain.size
    magic = b"P5" if mode == "L" else b"P6"
    return magic + f"\n{width} {height}\n255\n".encode() + plain.tobytes()


def transform_payload(spec: ImageVariantSpec, seed: int | None) -> dict[str, Any]:
    """The transform and its parameters (the seed resolved), as recorded with each answer."""
    payload = spec.model_dump(mode="json", exclude={"id", "tasks"})
    if "seed" in payload:
        payload["seed"] = seed
    return payload


def recipe_key(source_sha256: str, transform: dict[str, Any]) -> str:
    """The recipe of a derived image: what makes its bytes, hashed (see the module)."""
    return recipe_keys(transform)(source_sha256)


def recipe_keys(transform: dict[str, Any]) -> Callable[[str], str]:
    """`recipe_key` of one transform for any source hash: the JSON is built once, around a
    slot for the source's hash (planning keys every image of a suite this way)."""
    import PIL

    slot = "\u0000source\u0000"
    payload = {
        "derive": DERIVE_VERSION,
        "source": slot,
        "transform": transform,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
    }
    head, tail = (part.encode() for part in canonical_json(payload).split(canonical_json(slot)))
    sha256 = hashlib.sha256

    def key(source_sha256: str) -> str:
        return sha256(head + b'"' + source_sha256.encode() + b'"' + tail).hexdigest()

    return key


class DerivedBytesError(ImageError):
    """A recipe derived again gave other bytes than it gave before."""


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

    def recipe_path(self, recipe: str) -> Path:
        """Where the image of `recipe` is (or will be) stored."""
        return Path(self.recipe_file(recipe))

    def recipe_file(self, recipe: str) -> str:
        """`recipe_path` as text (planning names every derived image of a suite)."""
        return f"{self.root}{os.sep}derived{os.sep}{recipe[:2]}{os.sep}{recipe}.pnm"

    def _recorded(self, recipe: str) -> str | None:
        path = self.root / "recipes" / recipe
        known = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
        return known if _SHA.match(known) else None

    def is_derived(self, recipe: str) -> bool:
        """Whether the image of `recipe` is stored with the bytes recorded for it."""
        known = self._recorded(recipe)
        path = self.recipe_path(recipe)
        return (
            known is not None
            and path.is_file()
            and hashlib.sha256(path.read_bytes()).hexdigest() == known
        )

    def put_derived(self, recipe: str, data: bytes, source: str) -> Path:
        """Store the derived bytes of `recipe` (netpbm), checked against the bytes recorded for
        it before, if any; raises DerivedBytesError when they differ."""
        sha256 = hashlib.sha256(data).hexdigest()
        known = self._recorded(recipe)
        if known is not None and known != sha256:
            raise DerivedBytesError(
                source,
                f"deriving recipe {recipe[:12]} again gave other bytes ({sha256[:12]}) than "
                f"before ({known[:12]}): the transform is not deterministic here",
            )
        target = self.recipe_path(recipe)
        try:
            write_bytes_atomic(target, data)
            if known is None:
                write_text_atomic(self.root / "recipes" / recipe, sha256 + "\n")
        except OSError as e:
            if e.errno not in _FULL:
                raise
            raise StoreFullError(self.root, len(data)) from e
        return target

    def put_ssim(self, recipe: str, value: float) -> None:
        """Record the SSIM of `recipe`'s image against its source as the model receives it."""
        try:
            write_text_atomic(self._ssim_path(recipe), f"{value:.6f}\n")
        except OSError as e:
            if e.errno not in _FULL:
                raise
            raise StoreFullError(self.root, 16) from e

    def ssim(self, recipe: str) -> float | None:
        """The SSIM recorded for `recipe` (None: not measured, or not a number in [-1, 1])."""
        path = self._ssim_path(recipe)
        try:
            value = float(path.read_text(encoding="utf-8").strip()[:32])
        except (OSError, ValueError):
            return None
        return value if -1.0 <= value <= 1.0 else None

    def _ssim_path(self, recipe: str) -> Path:
        return self.root / "ssim" / recipe[:2] / recipe

    def derived_before(self, original_sha256: str, transform: dict[str, Any]) -> str | None:
        """The bytes' hash the pre-recipe store recorded for a variant of an original (None:
        never derived there): what the variant's answers were keyed by before recipes."""
        index = self._index(original_sha256, transform)
        known = index.read_text(encoding="utf-8").strip() if index.is_file() else ""
        return known if _SHA.match(known) else None

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
        try:
            if not self._holds(sha256):
                write_bytes_atomic(target, data)
            write_text_atomic(index, sha256 + "\n")
        except OSError as e:
            if e.errno not in _FULL:
                raise
            raise StoreFullError(self.root, len(data)) from e
        return ImageRef(str(target), sha256)
