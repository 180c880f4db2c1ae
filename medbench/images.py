"""Image files: decode safely into RGB, and hash their bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from medbench.errors import MedbenchError

DEFAULT_MAX_PIXELS = 50_000_000
"""Larger images are refused before decoding (a decompression bomb, or not a medical image)."""

_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_SIXTEEN_BIT_MAX = 65535


class ImageError(MedbenchError):
    """An image file cannot be read: missing, not an image, truncated, or too large."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def load_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image file fully into an upright RGB image, or raise ImageError."""
    # medbench checks each image against its own explicit limit before decoding; PIL's
    # process-wide check would warn (or fail) on images medbench was told to accept.
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(path, f"over the pixel limit ({width} x {height} > {max_pixels})")
            image.load()
            upright = ImageOps.exif_transpose(image)
            return to_rgb(upright)
    except ImageError:
        raise
    except FileNotFoundError as e:
        raise ImageError(path, "no such file") from e
    except IsADirectoryError as e:
        raise ImageError(path, "is a directory, not an image") from e
    except UnidentifiedImageError as e:
        raise ImageError(path, "not an image") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(path, f"over the pixel limit ({e})") from e
    except OSError as e:
        reason = "truncated" if "truncated" in str(e) else f"cannot be decoded ({e})"
        raise ImageError(path, reason) from e
    except Exception as e:  # a format plugin may fail in any way on a hostile file
        raise ImageError(path, f"cannot be decoded ({type(e).__name__}: {e})") from e


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB: transparency on white, 16-bit scaled, not clipped."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in _SIXTEEN_BIT_MODES or mode in {"I", "F"}:
        return _wide_to_rgb(image)
    return image.convert("RGB")


def _wide_to_rgb(image: Image.Image) -> Image.Image:
    """Scale a 16-bit, 32-bit integer or float grey image to 8 bits.

    16-bit data keeps its meaning (0..65535 maps linearly onto 0..255); 32-bit integer
    data within 0..65535 is treated as 16-bit; anything else is stretched from its own
    minimum to its maximum.
    """
    values = np.asarray(image, dtype=np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    sixteen_bit = image.mode in _SIXTEEN_BIT_MODES or (
        image.mode == "I" and low >= 0 and high <= _SIXTEEN_BIT_MAX
    )
    if sixteen_bit:
        low, high = 0.0, float(_SIXTEEN_BIT_MAX)
    scaled = np.zeros_like(values) if high <= low else (values - low) * (255.0 / (high - low))
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def sha256_file(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["DEFAULT_MAX_PIXELS", "ImageError", "load_image", "sha256_file", "to_rgb"]
