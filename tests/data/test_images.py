"""Tests of medbench.data.images: every file gives an RGB image or an ImageError."""

from __future__ import annotations

import hashlib
import io
import re
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medbench.data.checks import image_problem
from medbench.data.images import (
    ImageError,
    bytes_pixel_problem,
    load_image,
    pad_to_square,
    png_significant_bits,
    sha256_file,
)
from medbench.errors import MedbenchError
from tests.image_bombs import png_declaring, tiff_declaring

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


def noise(size: int = 64) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def cut_in_half(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def error_for(path: Path, reason: str) -> str:
    return f"^{re.escape(f'{path}: {reason}')}$"


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 8) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def test_load_image_rgb_jpeg_is_returned_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "noise.png"
    noise().save(path)
    image = load_image(path)
    assert image.mode == "RGB"
    assert image.size == (64, 64)
    assert np.array_equal(np.asarray(image), np.asarray(noise()))


def test_load_image_corrupt_jpeg_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.jpg"
    noise().save(path, quality=90)
    cut_in_half(path)
    with pytest.raises(ImageError, match=error_for(path, "truncated")):
        load_image(path)


def test_load_image_truncated_png_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "truncated.png"
    noise().save(path)
    cut_in_half(path)
    with pytest.raises(ImageError, match=error_for(path, "truncated")):
        load_image(path)


def test_load_image_text_file_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is a radiology report, not a picture\n")
    with pytest.raises(ImageError, match=error_for(path, "not an image")):
        load_image(path)


def test_load_image_missing_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "missing.jpg"
    with pytest.raises(ImageError, match=error_for(path, "no such file")):
        load_image(path)


def test_load_image_over_pixel_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "large.png"
    noise(64).save(path)
    with pytest.raises(ImageError, match=error_for(path, "over the pixel limit (64 x 64 > 4000)")):
        load_image(path, max_pixels=4000)


def test_load_image_over_pil_bomb_limit_raises_no_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bomb.png"
    Image.new("L", (100, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(
        ImageError, match=error_for(path, "over the pixel limit (100 x 100 > 5000)")
    ):
        load_image(path, max_pixels=5000)
    assert load_image(path, max_pixels=10_000).size == (100, 100)


def test_load_image_error_is_a_medbench_error() -> None:
    assert issubclass(ImageError, MedbenchError)


def test_load_image_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "grey16.png"
    values = np.array([[0, 1000, 257 * 100, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(path)
    image = load_image(path)
    assert image.mode == "RGB"
    assert np.asarray(image)[0, :, 0].tolist() == [0, 4, 100, 255]


def test_load_image_cmyk_jpeg_keeps_its_colour(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)
    image = load_image(path)
    assert image.mode == "RGB"
    assert close_to(image.getpixel((8, 8)), RED)  # type: ignore[arg-type]


def test_load_image_palette_transparency_becomes_white(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.paste(1, (0, 0, 4, 8))
    image.save(path, transparency=0)
    loaded = load_image(path)
    assert loaded.mode == "RGB"
    assert loaded.getpixel((1, 1)) == RED
    assert loaded.getpixel((6, 1)) == WHITE


@pytest.mark.parametrize(
    ("mode", "colour", "expected"),
    [
        ("RGBA", (255, 0, 0, 0), WHITE),
        ("RGBA", (255, 0, 0, 255), RED),
        ("RGBA", (0, 0, 0, 128), (127, 127, 127)),
        ("LA", (0, 0), WHITE),
        ("LA", (0, 255), (0, 0, 0)),
        ("L", 200, (200, 200, 200)),
        ("1", 1, WHITE),
    ],
)
def test_load_image_mode_converts_to_rgb(
    tmp_path: Path, mode: str, colour: int | tuple[int, ...], expected: tuple[int, int, int]
) -> None:
    path = tmp_path / f"{mode}.png"
    Image.new(mode, (4, 4), colour).save(path)
    image = load_image(path)
    assert image.mode == "RGB"
    assert close_to(image.getpixel((0, 0)), expected, tolerance=1)  # type: ignore[arg-type]


def test_load_image_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    image = Image.new("RGB", (40, 20), RED)
    image.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera was turned; display rotated 90 degrees clockwise
    image.save(path, exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.size == (20, 40)
    assert close_to(loaded.getpixel((10, 5)), RED)  # type: ignore[arg-type]
    assert close_to(loaded.getpixel((10, 35)), BLUE)  # type: ignore[arg-type]


def test_load_image_sample_images_all_decode(sample_images: list[Path]) -> None:
    for path in sample_images[::8]:
        assert load_image(path).mode == "RGB"


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "bytes.bin"
    data = bytes(range(256)) * 10_000
    path.write_bytes(data)
    assert sha256_file(path, chunk_size=1000) == hashlib.sha256(data).hexdigest()

    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert sha256_file(empty) == hashlib.sha256(b"").hexdigest()


def test_load_image_float_tiff_is_stretched_over_its_range(tmp_path: Path) -> None:
    path = tmp_path / "float.tiff"
    Image.fromarray(np.array([[-1.0, 0.0, 1.0]], dtype=np.float32)).save(path)
    assert np.asarray(load_image(path))[0, :, 0].tolist() == [0, 128, 255]


def _grey16_png(path: Path, values: np.ndarray, sbit: int | None = None) -> Path:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    if sbit is not None:
        info.add(b"sBIT", bytes([sbit]))
    Image.fromarray(values.astype(np.uint16)).save(path, pnginfo=info)
    return path


def test_load_image_twelve_bit_data_in_a_sixteen_bit_png_spans_the_grey_range(
    tmp_path: Path,
) -> None:
    # a 12-bit detector's full range, stored in a 16-bit PNG without a declared depth
    values = np.array([[0, 1024, 2048, 4095]], dtype=np.uint16)
    image = load_image(_grey16_png(tmp_path / "ct12.png", values))
    assert [image.getpixel((x, 0)) for x in range(4)] == [
        (0, 0, 0),
        (64, 64, 64),
        (128, 128, 128),
        (255, 255, 255),
    ]


def test_load_image_declared_twelve_bits_scale_a_dark_image_by_its_depth(tmp_path: Path) -> None:
    # sBIT says 12 significant bits; the image only reaches 2047, so it stays mid-grey
    values = np.array([[0, 1000, 2047]], dtype=np.uint16)
    path = _grey16_png(tmp_path / "xray12.png", values, sbit=12)
    assert png_significant_bits(path) == 12
    image = load_image(path)
    assert [image.getpixel((x, 0))[0] for x in range(3)] == [0, 62, 127]


def test_png_significant_bits_without_sbit_is_none(tmp_path: Path) -> None:
    path = _grey16_png(tmp_path / "plain.png", np.array([[0, 5]]))
    assert png_significant_bits(path) is None
    assert png_significant_bits(tmp_path / "missing.png") is None


def test_pad_to_square_centres_the_image_on_the_fill_colour() -> None:
    wide = Image.new("RGB", (6, 2), (255, 0, 0))
    square = pad_to_square(wide, (122, 116, 104))
    assert square.size == (6, 6)
    assert square.getpixel((0, 0)) == (122, 116, 104)
    assert square.getpixel((0, 2)) == (255, 0, 0)
    assert square.getpixel((5, 3)) == (255, 0, 0)
    assert square.getpixel((5, 4)) == (122, 116, 104)
    tall = pad_to_square(Image.new("RGB", (1, 3), (0, 0, 255)), (0, 0, 0))
    assert tall.size == (3, 3)
    assert [tall.getpixel((x, 1)) for x in range(3)] == [(0, 0, 0), (0, 0, 255), (0, 0, 0)]
    same = Image.new("RGB", (4, 4))
    assert pad_to_square(same, (1, 2, 3)) is same


def _elapsed_and_peak(run: Callable[[], object]) -> tuple[float, float]:
    """Seconds `run` took and the megabytes Python (numpy included) held at its peak."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        run()
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return seconds, peak


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (tiff_declaring(20_000, 20_000), "over the pixel limit (20000 x 20000 > 50000000)"),
        (
            tiff_declaring(16, 16, tile=46_336),
            "over the pixel limit (TIFF tiles of 46336 x 46336 > 50000000)",
        ),
        (png_declaring(100_000, 100_000), "over the pixel limit (100000 x 100000 > 50000000)"),
    ],
    ids=["tiff-size", "tiff-tiles", "png-size"],
)
def test_load_image_bomb_is_refused_from_its_header(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    # each file is under 200 bytes; the TIFF's tiles allocated 2 GB before they were checked
    path = tmp_path / "bomb.tif"
    path.write_bytes(data)
    with pytest.raises(ImageError, match=error_for(path, reason)):
        load_image(path)
    assert image_problem(path) == reason  # what `validate` says of it
    assert bytes_pixel_problem(data) == reason  # what a table's cell is refused with
    seconds, peak = _elapsed_and_peak(lambda: pytest.raises(ImageError, load_image, path))
    assert seconds < 1 and peak < 1, (seconds, peak)


def test_load_image_tiff_tiles_within_the_pixel_limit_decode(tmp_path: Path) -> None:
    path = tmp_path / "tiled.tif"
    path.write_bytes(tiff_declaring(16, 16, tile=16))
    assert load_image(path).size == (16, 16)


def test_bytes_pixel_problem_of_an_unreadable_header_is_left_to_decoding() -> None:
    assert bytes_pixel_problem(b"\x89PNG\r\n\x1a\n" + b"\0" * 20) is None
    data = io.BytesIO()
    noise(8).save(data, format="PNG")
    assert bytes_pixel_problem(data.getvalue()) is None


def test_load_image_float_tiff_is_scaled_in_bands(tmp_path: Path) -> None:
    # a 7,000 x 7,000 float TIFF of 298 KB took 1.9 GB as whole-image float64 copies
    # (here: 16 megapixels, 100 KB; 488 MB before, 35 MB now)
    path = tmp_path / "float.tif"
    gradient = Image.linear_gradient("L").resize((4000, 4000)).convert("F")
    gradient.save(path, compression="tiff_deflate")
    assert path.stat().st_size < 200_000
    seconds, peak = _elapsed_and_peak(lambda: load_image(path))
    assert seconds < 10 and peak < 48, (seconds, peak)
    image = load_image(path)
    assert (image.getpixel((0, 0)), image.getpixel((0, 3999))) == ((0, 0, 0), (255, 255, 255))
