"""Medical perturbations and SSIM: each physical effect on synthetic images, determinism,
severities refused out of range, and the SSIM bands each severity is calibrated into."""

from __future__ import annotations

import functools
import multiprocessing
import os
import re
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError
from ruamel.yaml import YAML
from typer.testing import CliRunner

from medbench.data.images import load_image, sha256_file
from medbench.data.variants import medical
from medbench.data.variants.similarity import ssim
from medbench.data.variants.transforms import apply_transform, as_grey_if_grey
from tests.data.test_imagevariants import SHA, variant
from tests.spec.test_loading import SUITE, _app, write_tree
from tests.spec_tree import REPO

MEDICAL = ("bias_field", "motion", "exposure", "illumination", "stain")
SEEDED = ("bias_field", "motion", "stain")
RNG = np.random.default_rng(7)
NOISE = RNG.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
"""A random colour image 48 wide and 40 high (not square: each side is its own scale)."""


def perturb(name: str, image: Image.Image, seed: int = 0, sha: str = SHA, **fields: Any) -> Any:
    spec = variant(name, **{"severity": 3, **fields})
    return apply_transform(spec, image, seed=seed, content_sha256=sha)


def pixels(image: Image.Image) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray(image, dtype=np.float64)


def grey(level: int, side: int = 64) -> Image.Image:
    return Image.new("L", (side, side), level)


# SSIM


def test_ssim_of_an_image_with_itself_is_one() -> None:
    colour = Image.fromarray(NOISE, "RGB")
    assert ssim(colour, colour) == 1.0
    assert ssim(colour.convert("L"), colour.convert("L")) == 1.0
    assert ssim(grey(0), grey(0)) == 1.0


def test_ssim_falls_with_noise() -> None:
    image = Image.fromarray(NOISE, "RGB")
    rng = np.random.default_rng(0)
    values = []
    for sigma in (2, 8, 32):
        noisy = np.clip(np.rint(pixels(image) + rng.normal(0, sigma, NOISE.shape)), 0, 255)
        values.append(ssim(image, Image.fromarray(noisy.astype(np.uint8), "RGB")))
    assert 1.0 > values[0] > values[1] > values[2]


def test_ssim_compares_a_grey_image_with_a_colour_one_as_rgb() -> None:
    image = Image.fromarray(NOISE, "RGB").convert("L")
    assert ssim(image, image.convert("RGB")) == 1.0
    assert ssim(image, Image.fromarray(NOISE, "RGB")) == ssim(
        image.convert("RGB"), Image.fromarray(NOISE, "RGB")
    )


def test_ssim_of_a_small_image_uses_the_largest_window_that_fits() -> None:
    small = Image.fromarray(NOISE[:5, :8], "RGB")
    assert ssim(small, small) == 1.0
    assert ssim(small, Image.fromarray(NOISE[5:10, :8], "RGB")) < 0.5
    with pytest.raises(ValueError, match=r"^SSIM needs images of 3 pixels a side at least"):
        ssim(Image.new("L", (2, 9)), Image.new("L", (2, 9)))


def test_ssim_refuses_images_of_two_sizes() -> None:
    with pytest.raises(ValueError, match=r"^SSIM compares images of one size, got"):
        ssim(grey(0, 16), grey(0, 17))


# Each physical effect


def test_bias_field_is_smooth() -> None:
    out = perturb("bias_field", grey(200), severity=5)
    log_ratio = np.log(pixels(out) / 200)
    span = float(log_ratio.max() - log_ratio.min())
    steps = np.abs(np.diff(log_ratio, axis=0)).mean() + np.abs(np.diff(log_ratio, axis=1)).mean()
    assert span > 1.0  # a strong field ...
    assert steps < span / 20  # ... changing little from a pixel to the next


def test_bias_field_is_multiplicative() -> None:
    low, high = (pixels(perturb("bias_field", grey(level), severity=2)) for level in (60, 120))
    assert not np.array_equal(low, np.full_like(low, 60))
    # the same gain at either level, up to the rounding to whole grey levels
    assert np.abs(low / 60 - high / 120).max() <= 0.5 / 60 + 0.5 / 120


def bright_square(side: int = 64) -> Image.Image:
    """A bright square on black, a quarter of the side wide, a little left of the centre."""
    image = np.zeros((side, side), dtype=np.uint8)
    q = side // 8
    image[3 * q : 5 * q, 5 * q // 2 : 9 * q // 2] = 200
    return Image.fromarray(image, "L")


def test_motion_ghosts_the_object_along_the_phase_direction() -> None:
    square = bright_square()
    out = pixels(perturb("motion", square, severity=5))
    inside = pixels(square) > 0
    columns = inside.any(axis=0)[None, :].repeat(64, axis=0)
    # energy leaves the square up and down its own columns (the phase direction), never sideways
    assert out[columns & ~inside].sum() > 0.05 * out[inside].sum()
    assert out[~columns].max() == 0


def test_motion_ghosts_more_at_a_higher_severity() -> None:
    square = bright_square(256)  # 257 lines drawn: some are moved even at severity 1
    change = [
        np.abs(pixels(perturb("motion", square, severity=s)) - pixels(square)).sum()
        for s in (1, 3, 5)
    ]
    assert 0 < change[0] < change[1] < change[2]


def ramp() -> Image.Image:
    return Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (8, 1)), "L")


@pytest.mark.parametrize("direction", ["over", "under"])
def test_exposure_moves_the_grey_levels_in_order_and_clips(direction: str) -> None:
    out = pixels(perturb("exposure", ramp(), severity=4, direction=direction))[0]
    level = np.arange(256.0)
    assert np.all(np.diff(out) >= 0)  # the order of grey levels is kept
    if direction == "over":
        assert np.all(out >= level) and out.mean() > level.mean() + 20
        assert out[200] == 255  # whites clip
    else:
        assert np.all(out <= level) and out.mean() < level.mean() - 20
        assert out[40] == 0  # blacks clip


def test_exposure_acts_on_each_channel_alike() -> None:
    colour = Image.fromarray(NOISE, "RGB")
    out = perturb("exposure", colour)
    for c in range(3):
        alone = perturb("exposure", Image.fromarray(NOISE[..., c], "L"))
        assert np.array_equal(np.asarray(out)[..., c], np.asarray(alone))


def test_illumination_darkens_the_corners_more_than_the_centre() -> None:
    out = pixels(perturb("illumination", grey(200, 65), severity=5))
    assert out[32, 32] >= 199
    assert out[0, 0] < 0.6 * 200
    assert out[0, 32] < out[16, 32] < out[32, 32]


@pytest.mark.parametrize(("cast", "warmer"), [("warm", True), ("cool", False)])
def test_illumination_casts_its_colour_on_a_colour_image(cast: str, warmer: bool) -> None:
    white = Image.new("RGB", (64, 64), (200, 200, 200))
    red, green, blue = pixels(perturb("illumination", white, cast=cast)).mean(axis=(0, 1))
    assert (red > green > blue) == warmer
    assert (blue > green > red) == (not warmer)


def tissue() -> Image.Image:
    """A slide: glass (near-white, 230 to 255) with purple nuclei and pink stroma on it."""
    rng = np.random.default_rng(3)
    image = rng.integers(230, 256, size=(64, 64, 3)).astype(np.uint8)
    image[8:30, 8:30] = (110, 60, 150)  # haematoxylin-rich
    image[34:60, 20:56] = (220, 130, 190)  # eosin-rich
    return Image.fromarray(image, "RGB")


@pytest.mark.parametrize("seed", range(6))
def test_stain_keeps_the_glass_white_and_recolours_the_tissue(seed: int) -> None:
    slide = tissue()
    before = pixels(slide)
    out = pixels(perturb("stain", slide, seed=seed, severity=5))
    glass = (before >= 230).all(axis=-1)
    assert (out[glass] >= 220).all()
    for block in (np.s_[8:30, 8:30], np.s_[34:60, 20:56]):
        assert np.abs(out[block] - before[block]).max() >= 8


def test_stain_of_a_grey_image_is_grey_with_its_structure() -> None:
    image = Image.fromarray(np.asarray(tissue().convert("L")), "L")
    out = perturb("stain", image, severity=5)
    assert out.mode == "L"
    assert np.corrcoef(pixels(out).ravel(), pixels(image).ravel())[0, 1] > 0.9


# Every medical transform


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("name", MEDICAL)
def test_medical_transform_keeps_size_and_mode(name: str, mode: str) -> None:
    image = Image.fromarray(NOISE, "RGB").convert(mode)
    for severity in (1, 5):
        out = perturb(name, image, severity=severity)
        assert (out.size, out.mode) == ((48, 40), mode)
    assert not np.array_equal(np.asarray(out), np.asarray(image))


@pytest.mark.parametrize("name", MEDICAL)
def test_medical_transform_is_deterministic(name: str) -> None:
    image = Image.fromarray(NOISE, "RGB")

    def made(seed: int, sha: str = SHA) -> bytes:
        return perturb(name, image, seed=seed, sha=sha).tobytes()  # type: ignore[no-any-return]

    assert made(1) == made(1)
    assert (len({made(1), made(2), made(1, "1" * 64)}) == 3) == (name in SEEDED)


@pytest.mark.parametrize("severity", [0, 6])
@pytest.mark.parametrize("name", MEDICAL)
def test_severity_outside_one_to_five_is_refused(name: str, severity: int) -> None:
    bound = "greater than or equal to 1" if severity == 0 else "less than or equal to 5"
    with pytest.raises(ValidationError, match=f"severity\n  Input should be {bound}"):
        variant(name, severity=severity)


def test_severity_must_be_an_integer() -> None:
    with pytest.raises(ValidationError, match="severity\n  Input should be a valid integer"):
        variant("motion", severity="3")
    with pytest.raises(ValidationError, match="severity\n  Field required"):
        variant("stain")


def test_validate_locates_a_severity_out_of_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    suite = SUITE + "image_variants:\n  - {id: m, transform: motion, severity: 7}\n"
    write_tree(Path("."), {"specs/suites/demo.yaml": suite})
    result = CliRunner().invoke(_app(), ["validate", "specs", "--no-data"])
    assert result.exit_code == 2
    assert result.stderr == (
        "specs/suites/demo.yaml:10:42: image_variants.0.severity: expected a number <= 5, got 7.\n"
    )


# Severity calibration


def test_severity_bands_fall_with_severity_and_cover_every_table() -> None:
    bands = [medical.SEVERITY_SSIM[s] for s in range(1, 6)]
    assert all(low < high for low, high in bands)
    assert all(below[1] <= above[0] for above, below in zip(bands, bands[1:], strict=False))
    tables = [
        medical.BIAS_FIELD_LOG_GAIN,
        medical.MOTION_LINES,
        *medical.EXPOSURE_SHIFT.values(),
        *medical.ILLUMINATION_FALLOFF.values(),
        medical.STAIN_SPREAD,
    ]
    for table in tables:
        assert list(table) == [1, 2, 3, 4, 5]
        assert all(a < b for a, b in zip(table.values(), list(table.values())[1:], strict=False))


def test_readme_examples_of_medical_variants_are_valid() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "severity" in b]
    assert blocks
    for block in blocks:
        for entry in YAML(typ="safe").load(block)["image_variants"]:
            assert variant(**{"id": "x", **entry}).transform in MEDICAL


@functools.lru_cache(maxsize=1)
def sample(task: str, side: int) -> tuple[tuple[Image.Image, str], ...]:
    """The sample images of `task`, grey ones grey, resized to `side` square (bicubic)."""
    paths = sorted(p for p in (REPO / "data" / "sample" / task).glob("*/*") if p.is_file())
    square = (side, side)
    return tuple(
        (as_grey_if_grey(load_image(p)).resize(square, Image.Resampling.BICUBIC), sha256_file(p))
        for p in paths
    )


def ssim_sum(job: tuple[str, int, str, dict[str, Any], int, int]) -> float:
    """The sum of the SSIMs of a variant (`name`, `fields`) on every `parts`-th sample image
    of `task` from the `part`-th, resized to `side` px (seed 0)."""
    task, side, name, fields, part, parts = job
    images = sample(task, side)[part::parts]
    spec = variant(name, **fields)
    made = (apply_transform(spec, im, seed=0, content_sha256=sha) for im, sha in images)
    return sum(ssim(im, out) for (im, _), out in zip(images, made, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("side", [336, 896])
@pytest.mark.parametrize(
    ("name", "fields", "task"),
    [
        ("bias_field", {}, "brain_tumor_mri"),
        ("motion", {}, "brain_tumor_mri"),
        ("exposure", {"direction": "over"}, "pneumonia_cxr"),
        ("exposure", {"direction": "under"}, "pneumonia_cxr"),
        ("illumination", {"cast": "warm"}, "skin_lesion"),
        ("illumination", {"cast": "cool"}, "skin_lesion"),
        ("stain", {}, "histopathology"),
    ],
)
def test_severity_mean_ssim_on_the_samples_falls_in_its_band(
    name: str, fields: dict[str, str], task: str, side: int
) -> None:
    # SSIM at 896 px takes most of a minute per fault on one core: share the images out
    parts = os.cpu_count() or 1
    severities = range(1, 6)
    jobs = [
        (task, side, name, {**fields, "severity": s}, part, parts)
        for s in severities
        for part in range(parts)
    ]
    with ProcessPoolExecutor(parts, mp_context=multiprocessing.get_context("spawn")) as pool:
        sums = list(pool.map(ssim_sum, jobs))
    count = len(sample(task, side))
    means = [sum(sums[i * parts : (i + 1) * parts]) / count for i in range(len(severities))]
    bands = [medical.SEVERITY_SSIM[s] for s in severities]
    assert all(low < m < high for m, (low, high) in zip(means, bands, strict=True)), means


def test_calibrate_severities_quick_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "calibrate_severities.py"), "--quick"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("  table: {1: ") == 7
