"""Image files: decode safely into RGB, and hash their bytes."""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from medbench.errors import MedbenchError

DEFAULT_MAX_PIXELS = 50_000_000
"""Larger images are refused before decoding (a decompression bomb, or not a medical image)."""
_TIFF_TILE_WIDTH, _TIFF_TILE_LENGTH = 322, 323
_WIDE_BAND_PIXELS = 1 << 20
"""Pixels of a 16-bit, 32-bit or float image scaled at once (8 MB of float64)."""

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
            problem = pixel_problem(image, max_pixels)
            if problem is not None:
                raise ImageError(path, problem)
            image.load()
            bits = png_significant_bits(path) if image.format == "PNG" else None
            ImageOps.exif_transpose(image, in_place=True)  # a copy (200 MB at the limit) if not
            return to_rgb(image, bits=bits)
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


def pixel_problem(image: Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """Why decoding an opened image would make more than `max_pixels` pixels, read from its header
    alone (None: it would not).

    Only the first frame is ever decoded (`load_image` never seeks), and Pillow's `size` is already
    the canvas its first frame is drawn on (a GIF frame larger than its screen widens it). A tiled
    TIFF is decoded a whole tile at a time, so its tile counts as well: a 16 x 16 image of
    46,336 x 46,336 tiles, 150 bytes on disk, allocated 2 GB before it was refused.
    """
    width, height = image.size
    if width * height > max_pixels:
        return f"over the pixel limit ({width} x {height} > {max_pixels})"
    tags = getattr(image, "tag_v2", None)
    if tags is not None:
        tile = tags.get(_TIFF_TILE_WIDTH), tags.get(_TIFF_TILE_LENGTH)
        if all(isinstance(side, int) for side in tile) and tile[0] * tile[1] > max_pixels:
            return f"over the pixel limit (TIFF tiles of {tile[0]} x {tile[1]} > {max_pixels})"
    return None


def bytes_pixel_problem(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """`pixel_problem` of an image held in memory (None also where its header cannot be read:
    decoding it fails the same way, with nothing allocated)."""
    Image.MAX_IMAGE_PIXELS = None  # the explicit limit applies, as in `load_image`
    try:
        with Image.open(io.BytesIO(data)) as image:
            return pixel_problem(image, max_pixels)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return f"over the pixel limit ({e})"
    except Exception:  # a format plugin may fail in any way on a hostile header
        return None


def to_rgb(image: Image.Image, *, bits: int | None = None) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB: transparency on white, 16-bit scaled, not clipped.

    `bits` is the bit depth a file declares for wide grey data (a PNG's sBIT chunk), if any.
    """
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
        return _wide_to_rgb(image, bits)
    return image.convert("RGB")


def _wide_to_rgb(image: Image.Image, bits: int | None = None) -> Image.Image:
    """Scale a 16-bit, 32-bit integer or float grey image to 8 bits.

    Integer data within 0..65535 keeps its meaning: 0..2^b-1 maps linearly onto 0..255, where b
    is the bit depth the file declares, else the smallest of 8, 10, 12, 14 and 16 bits that holds
    the image's largest value. Scanners store 10-, 12- and 14-bit data in 16-bit files (a CT or
    X-ray PNG), and scaled as 16-bit their 0..4095 would come out as 0..16 of 255, nearly
    black. Anything else is stretched from its own minimum to its maximum.
    """
    # read in bands of rows: whole-image float64 copies of a 50-megapixel float TIFF took 1.9 GB
    width, height = image.size
    rows = max(1, _WIDE_BAND_PIXELS // max(1, width))
    boxes = [(0, top, width, min(top + rows, height)) for top in range(0, height, rows)]
    low, high = 0.0, 0.0
    if width and height:
        extremes = np.array([_extremes(np.asarray(image.crop(box))) for box in boxes])
        low, high = float(np.min(extremes[:, 0])), float(np.max(extremes[:, 1]))
    integer = image.mode in _SIXTEEN_BIT_MODES or (
        image.mode == "I" and low >= 0 and high <= _SIXTEEN_BIT_MAX
    )
    if integer:
        depth = bits if bits is not None and 1 <= bits <= 16 else _depth_holding(high)
        low, high = 0.0, float(2**depth - 1)
    grey = np.zeros((height, width), dtype=np.uint8)
    if high > low:  # (not when either is NaN: the image is then black, as it always was)
        for box in boxes:
            band = np.asarray(image.crop(box)).astype(np.float64)
            band -= low
            band *= 255.0 / (high - low)
            grey[box[1] : box[3]] = np.clip(np.rint(band, out=band), 0, 255, out=band)
    return Image.fromarray(grey).convert("RGB")


def _extremes(values: np.ndarray[Any, Any]) -> tuple[float, float]:
    return float(values.min()), float(values.max())


def _depth_holding(value: float) -> int:
    return next((depth for depth in (8, 10, 12, 14) if value <= 2**depth - 1), 16)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_HEADER_CHUNKS = 64
"""The most chunks read before giving up on an sBIT chunk (it must come before the image data)."""


def png_significant_bits(path: str | Path) -> int | None:
    """The bit depth a PNG declares for its grey samples (its sBIT chunk), or None.

    Pillow reads sBIT only to write it back, so the chunks before the image data are read here.
    """
    try:
        with open(path, "rb") as handle:
            if handle.read(8) != _PNG_SIGNATURE:
                return None
            for _ in range(_PNG_HEADER_CHUNKS):
                head = handle.read(8)
                if len(head) < 8:
                    return None
                length, kind = struct.unpack(">I4s", head)
                if kind in (b"IDAT", b"IEND"):
                    return None
                if kind == b"sBIT":
                    data = handle.read(min(length, 4))
                    return data[0] if data else None
                handle.seek(length + 4, 1)
    except OSError:
        return None
    return None


def pad_to_square(image: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
    """The image centred on a square of `fill` as wide as its longer side (LLaVA's
    `expand2square`); a square image is returned as it is."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    square = Image.new(image.mode, (side, side), fill)
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square


def sha256_file(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageError",
    "bytes_pixel_problem",
    "load_image",
    "pad_to_square",
    "pixel_problem",
    "png_significant_bits",
    "sha256_file",
    "to_rgb",
]
