"""Deriving the paper suite's image variants of one full-size chest X-ray: before and after.

A synthetic 2,000 x 2,000 chest-X-ray-like image (grey, smooth body, rib-like bands, fine
noise, saved as a JPEG) gets the paper suite's 12 derived variants (the transforms, `blank`
and `noise`). Before: the code before recipes, which derived at plan time, one variant at a
time (the source decoded again for each, RGB throughout, float64 noise, PNG level 6), kept
here as it was. After: `derive_images`, each source decoded once, grey kept grey, raw netpbm
files, integer noise; first serially on one image, then on N copies over every core (wall time
/ N per image).

Run: .venv/bin/python benchmarks/bench_variants.py [--quick]   (quick: a 500 px image, 2 copies)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medbench.data.images import load_image
from medbench.data.variants import (
    DERIVED,
    ImageStore,
    Recipe,
    derive_images,
    recipe_key,
    transform_image,
    transform_payload,
)
from medbench.data.variants.transforms import generator
from medbench.spec import ImageRef
from medbench.spec.loading import load_specs

REPO = Path(__file__).resolve().parent.parent


def chest_xray_like(side: int, seed: int = 0) -> Image.Image:
    """A grey image with a chest X-ray's broad features and texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    body = 60 * np.exp(-((x - 0.5) ** 2 / 0.125 + (y - 0.5) ** 2 / 0.245))
    ribs = 20 * np.sin(y * side / 40)
    pixels = 90 + body + ribs + rng.normal(0, 6, (side, side))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")


def legacy_encode(image: Image.Image) -> bytes:
    plain = Image.fromarray(np.asarray(image.convert("RGB")), "RGB")
    buffer = io.BytesIO()
    plain.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def legacy_transform(spec: Any, image: Image.Image, seed: int, sha: str) -> Image.Image:
    """The transforms as they were: RGB in, RGB out, float64 noise and means."""
    if spec.transform == "gaussian_noise":
        pixels = np.asarray(image, dtype=np.float64)
        noisy = pixels + generator(seed, sha).normal(0.0, spec.sigma, size=pixels.shape)
        return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), "RGB")
    if spec.transform == "blank":
        mean = np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0)
        red, green, blue = (int(v) for v in np.clip(np.rint(mean), 0, 255))
        return Image.new("RGB", image.size, (red, green, blue))
    return transform_image(spec, image, seed=seed, content_sha256=sha)


def legacy_derive(path: Path, specs: list[Any], sha: str) -> None:
    for spec in specs:  # the original decoded again for every variant, as the store did
        legacy_encode(legacy_transform(spec, load_image(path), 0, sha))


def recipes_of(path: Path, specs: list[Any]) -> list[Recipe]:
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    source = ImageRef(str(path), sha)
    return [Recipe(recipe_key(sha, transform_payload(s, 0)), source, s, 0) for s in specs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a 500 px image, 2 copies")
    args = parser.parse_args()
    side, copies = (500, 2) if args.quick else (2000, max(4, 2 * (os.cpu_count() or 1)))
    suite = load_specs(REPO / "specs").suite("paper")
    specs = [s for s in suite.image_variants if s.transform in DERIVED]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        image = chest_xray_like(side)
        paths = []
        for i in range(copies):
            path = root / f"cxr{i}.jpeg"
            image.save(path, quality=90 - i % 5)  # other bytes, other recipes
            paths.append(path)
        sha = hashlib.sha256(paths[0].read_bytes()).hexdigest()
        started = time.perf_counter()
        legacy_derive(paths[0], specs, sha)
        before = time.perf_counter() - started
        started = time.perf_counter()
        failed = derive_images(recipes_of(paths[0], specs), ImageStore(root / "one"), workers=1)
        serial = time.perf_counter() - started
        every = [r for p in paths for r in recipes_of(p, specs)]
        started = time.perf_counter()
        failed |= derive_images(every, ImageStore(root / "all"))
        parallel = (time.perf_counter() - started) / copies
        assert not failed, failed
    cores = os.cpu_count() or 1
    print(f"{len(specs)} derived variants of one {side} x {side} chest-X-ray-like image")
    print(f"before (plan time, serial): {before:.2f} s per image")
    print(f"after, one process:         {serial:.2f} s per image ({before / serial:.1f}x)")
    print(
        f"after, {cores} cores, {copies} images: {parallel:.2f} s per image "
        f"({before / parallel:.1f}x; target >= 20x)"
    )


if __name__ == "__main__":
    main()
