"""Benchmark of the hf backend's shared image prefix: prefill tokens and time, with and without.

Run ``python benchmarks/bench_prefix.py [--quick] [--images 6] [--arch llava ...]
[--family closed_diagnosis] [--new-tokens 16] [--geometry real|tiny] [--image-after]``. For
each of the tiny LLaVA, LLaVA-NeXT and Gemma 3 models, built with the real models' image
geometry (`real`, the default: 576 image tokens for LLaVA-1.5, LLaVA-NeXT's 336-px tiles, 256
tokens for Gemma 3; tiny weights otherwise, so that a prompt is as long as a real model's), asks
N sample brain MRIs with every image-first wording of one shipped prompt family
(`closed_diagnosis`: seven, one a persona with its own system text; `--image-after` adds its
image-after wording, which shares nothing, its text coming first), in batches of two images'
prompts, greedy: once computing every prompt in full, once from the prefixes the rows share.
After a warm-up of each, prints per model the prompt tokens computed both ways and their ratio,
the wall time both ways, and whether the answers are the same tokens.

Exits 1 if a model's answers differ between the two ways, if a model shared no prefix, or if a
family's seven or more image-first wordings compute more than 0.4 of their prompt tokens with
sharing, over the models asked (each model's ratio is printed: Gemma 3's 256 image tokens make
its own higher, the more so as the tiny tokenizer writes the wordings in about twice the tokens
of a real one). `--quick`: 2 images, 8 new tokens (seconds once torch is imported).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ARCHS = ("llava", "llava_next", "gemma3")
MOST_RATIO = 0.4
"""The most prompt tokens a family of seven wordings may compute with sharing, as a fraction of
those of its full prompts, over the models asked."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--family", default="closed_diagnosis")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--geometry", default="real", choices=["real", "tiny"])
    parser.add_argument(
        "--image-after", action="store_true", help="ask the image-after wordings too"
    )
    parser.add_argument("--quick", action="store_true", help="2 images, 8 new tokens")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.new_tokens = 2, 8

    import torch

    from medbench.checkpoints.tiny.build import REAL, TINY, build_tiny_model

    torch.set_num_threads(1)
    root = Path(__file__).resolve().parent.parent
    images = sorted((root / "data" / "sample" / "brain_tumor_mri").glob("*/*.jpg"))
    images = images[:: max(1, len(images) // args.images)][: args.images]
    requests = family_requests(root, images, args.family, args.image_after)
    wordings = len(requests) // len(images)
    geometry = REAL if args.geometry == "real" else TINY
    which = "wordings" if args.image_after else "image-first wordings"
    print(
        f"shared image prefix: {args.family} ({wordings} {which}) x {len(images)} images, "
        f"{args.geometry} image geometry, batches of {2 * wordings}, {args.new_tokens} new "
        "tokens, greedy, CPU float32, one thread"
    )
    print(
        f"{'model':<12} {'prefill full':>12} {'shared':>8} {'ratio':>6} "
        f"{'s full':>7} {'s shared':>8} {'speed-up':>8}  answers"
    )
    problems: list[str] = []
    totals = [0, 0]
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.arch:
            folder = build_tiny_model(arch, Path(tmp) / arch, seed=0, geometry=geometry)
            runs = {share: ask(arch, folder, requests, share, args.new_tokens, wordings)
                    for share in (False, True)}  # fmt: skip
            (full, full_s, full_n), (shared, shared_s, shared_n) = runs[False], runs[True]
            same = full == shared
            ratio = shared_n / full_n
            print(
                f"{arch:<12} {full_n:>12,} {shared_n:>8,} {ratio:>6.2f} {full_s:>7.2f} "
                f"{shared_s:>8.2f} {full_s / shared_s:>7.2f}x  "
                + ("the same tokens" if same else "DIFFER")
            )
            totals[0] += full_n
            totals[1] += shared_n
            if not same:
                problems.append(f"{arch}: answers differ with a shared prefix")
            if shared_n >= full_n:
                problems.append(f"{arch}: no prefix was shared")
    ratio = totals[1] / totals[0]
    print(f"{'all':<12} {totals[0]:>12,} {totals[1]:>8,} {ratio:>6.2f}")
    if wordings >= 7 and not args.image_after and ratio > MOST_RATIO:
        problems.append(f"prefill ratio {ratio:.2f} > {MOST_RATIO} for {wordings} wordings")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


def family_requests(
    root: Path, images: list[Path], family: str, image_after: bool = False
) -> list[Any]:
    """The image-first wordings of a shipped family about each image (`image_after`: its
    wordings with the image after the text too), one image's wordings side by side (as the
    runner lays them out)."""
    from medbench.data.images import sha256_file
    from medbench.run.backends.base import Request
    from medbench.spec.loading import load_specs
    from medbench.spec.prompts import ImageRef, render

    specs = load_specs(root / "specs")
    spec, task = specs.families[family], specs.tasks["brain_tumor_mri"]
    requests = []
    for path in images:
        refs = (ImageRef(str(path), sha256_file(path)),)
        for variant in spec.variants if image_after else spec.text_variants():
            messages = render(spec, variant, task, refs).messages
            requests.append(Request(key=f"{path.name}/{variant.id}", messages=messages))
    return requests


def ask(
    arch: str, folder: Path, requests: list[Any], share: bool, new_tokens: int, wordings: int
) -> tuple[list[str | None], float, int]:
    """The answers, the seconds (after a warm-up on the first image) and the prompt tokens
    computed, with or without shared prefixes."""
    from medbench.run.backends.base import BackendContext
    from medbench.run.backends.hf import HFBackend
    from medbench.spec.model import ModelSpec

    spec = ModelSpec.model_validate(
        {
            "schema_version": 1,
            "kind": "model",
            "id": f"bench-{arch.replace('_', '-')}",
            "title": arch,
            "backend": "hf",
            "family": "gemma3" if arch == "gemma3" else arch,
            "path": "data/models/bench",
            "dtype": "float32",
            "generation": {"max_new_tokens": new_tokens, "do_sample": False},
            "test_model": True,
        }
    )
    context = BackendContext(device="cpu", batch_size=2 * wordings, checkpoint_dir=folder)
    backend = HFBackend(spec, context)
    try:
        backend.share_prefix = share
        backend.generate(requests[:wordings])  # warm-up: first calls allocate
        computed = backend.prefill.computed
        start = time.perf_counter()
        answers = [o.text for o in backend.generate(requests)]
        seconds = time.perf_counter() - start
        return answers, seconds, backend.prefill.computed - computed
    finally:
        backend.close()


if __name__ == "__main__":
    sys.exit(main())
