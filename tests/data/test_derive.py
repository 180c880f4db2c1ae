"""Deriving image variants fast: grey images kept grey, integer noise, raw files, every core."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medbench.data.images import load_image
from medbench.data.variants import (
    ImageStore,
    Recipe,
    derive_images,
    encode_pnm,
    recipe_key,
    transform_payload,
)
from medbench.data.variants.transforms import apply_transform, as_grey_if_grey
from medbench.spec import ImageRef
from tests.data.test_imagevariants import DERIVED_SPECS, SHA, variant
from tests.spec_tree import REPO


def _grey_rgb(side: int = 96, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    grey = rng.integers(0, 256, size=(side, side), dtype=np.uint8)
    return Image.fromarray(np.stack([grey] * 3, axis=-1), "RGB")


# `illumination` casts a colour and `stain` stains: a grey image gets neither (see transforms)
@pytest.mark.parametrize("name", sorted(set(DERIVED_SPECS) - {"jpeg", "illumination", "stain"}))
def test_apply_transform_on_grey_gives_the_rgb_results_pixels(name: str) -> None:
    rgb = _grey_rgb()
    grey = as_grey_if_grey(rgb)
    assert grey.mode == "L"
    spec = variant(name, **DERIVED_SPECS[name])
    on_rgb = apply_transform(spec, rgb, seed=0, content_sha256=SHA)
    on_grey = apply_transform(spec, grey, seed=0, content_sha256=SHA)
    assert np.array_equal(np.asarray(on_grey.convert("RGB")), np.asarray(on_rgb))


def test_as_grey_if_grey_keeps_a_colour_image() -> None:
    image = _grey_rgb()
    pixels = np.asarray(image).copy()
    pixels[0, 0, 2] ^= 1
    coloured = Image.fromarray(pixels, "RGB")
    assert as_grey_if_grey(coloured) is coloured


def test_gaussian_noise_is_the_rounded_gaussian_of_its_sigma() -> None:
    flat = Image.new("RGB", (300, 300), (128, 128, 128))
    out = apply_transform(variant("gaussian_noise", sigma=5.0), flat, seed=0, content_sha256=SHA)
    noise = np.asarray(out, dtype=np.float64) - 128
    assert abs(noise.mean()) < 0.05
    assert noise.std() == pytest.approx((5.0**2 + 1 / 12) ** 0.5, rel=0.02)


def test_encode_pnm_decodes_to_the_same_rgb_pixels(tmp_path: Path) -> None:
    for image in (_grey_rgb(), as_grey_if_grey(_grey_rgb())):
        path = tmp_path / "x.pnm"
        path.write_bytes(encode_pnm(image))
        assert np.array_equal(np.asarray(load_image(path)), np.asarray(image.convert("RGB")))


def _recipes(tmp_path: Path, n: int) -> list[Recipe]:
    recipes = []
    for i in range(n):
        path = tmp_path / f"src{i}.png"
        _grey_rgb(seed=i).save(path)
        sha = f"{i:064x}"
        for name in ("rotate", "gaussian_noise", "blur"):
            spec = variant(name, **DERIVED_SPECS[name])
            key = recipe_key(sha, transform_payload(spec, 0))
            recipes.append(Recipe(key, ImageRef(str(path), sha), spec, 0))
    return recipes


def test_derive_images_over_several_processes_gives_the_same_bytes(tmp_path: Path) -> None:
    recipes = _recipes(tmp_path, 5)
    assert derive_images(recipes, ImageStore(tmp_path / "one"), workers=1) == {}
    assert derive_images(recipes, ImageStore(tmp_path / "two"), workers=2) == {}
    for recipe in recipes:
        one = ImageStore(tmp_path / "one").recipe_path(recipe.key).read_bytes()
        assert ImageStore(tmp_path / "two").recipe_path(recipe.key).read_bytes() == one


def test_derive_images_reports_an_unreadable_source_per_recipe(tmp_path: Path) -> None:
    recipes = _recipes(tmp_path, 1)
    Path(recipes[0].source.path).write_bytes(b"not an image")
    failed = derive_images(recipes, ImageStore(tmp_path / "s"), workers=1)
    assert set(failed) == {r.key for r in recipes}
    assert all(why.endswith("not an image") for why in failed.values())


def test_bench_variants_quick_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_variants.py"), "--quick"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    assert "target >= 20x" in done.stdout
