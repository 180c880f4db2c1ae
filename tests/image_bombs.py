"""Image files that declare far more than they hold, written byte by byte so that building one
never allocates what it declares: decompression bombs for the tests of the pixel limit."""

from __future__ import annotations

import struct
import zlib


def png_declaring(width: int, height: int) -> bytes:
    """A grey PNG whose header declares `width` x `height` pixels, with 1 KB of image data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


def tiff_declaring(width: int, height: int, tile: int | None = None) -> bytes:
    """A deflate-compressed grey TIFF of one strip (or of `tile` x `tile` tiles) whose header
    declares `width` x `height` pixels, with the black pixels of one strip or tile, or 64 KiB."""
    data = zlib.compress(bytes(min(width * height if tile is None else tile * tile, 1 << 16)))
    layout = (
        [(322, 4, tile), (323, 4, tile), (324, 4, 8), (325, 4, len(data))]
        if tile is not None
        else [(273, 4, 8), (278, 4, height), (279, 4, len(data))]
    )
    entries = sorted(
        [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 8), (262, 3, 1), (277, 3, 1)]
        + layout
    )
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:  # kind 3: a short, 4: a long
        ifd += struct.pack("<HHII" if kind == 4 else "<HHIH2x", tag, kind, 1, value)
    ifd += struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", 8 + len(data)) + data + ifd


def zero_bmp(side: int) -> bytes:
    """A real 24-bit BMP of `side` x `side` black pixels (3 bytes each: it holds what it
    declares, and compresses to almost nothing)."""
    row = (side * 3 + 3) // 4 * 4
    size = row * side
    head = b"BM" + struct.pack("<IHHI", 54 + size, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 24, 0, size, 2835, 2835, 0, 0)
    return head + info + b"\0" * size
