"""Benchmark of option likelihood scoring against generation: cost per image, tiny models.

Run ``python benchmarks/bench_likelihood.py [--arch gemma3] [--images 16] [--batch-size 8]``.
Builds a tiny random-weight model, then on the same sample images and a closed prompt with
the brain tumour task's four options, times batched greedy generation (12 new tokens) and
batched option scoring (all four options of an image in one forward pass, prompt recomputed
per option row), one run each after a warm-up, and prints seconds per image and the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

OPTIONS = ("glioma", "meningioma", "pituitary tumor", "no tumor")
QUESTION = (
    "Does this brain MRI show a tumour, and of which kind? Answer with one of: "
    + ", ".join(OPTIONS)
    + "."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default="gemma3", choices=["llava", "llava_next", "gemma3"])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    import torch

    from medbench.backends.base import BackendContext, Request
    from medbench.backends.hf import HFBackend
    from medbench.backends.hf.likelihood import OptionScorer
    from medbench.images import sha256_file
    from medbench.prompts import ImageRef, Messages
    from medbench.specs import ModelSpec, TinySpec
    from medbench.tiny import ensure_tiny_model

    torch.set_num_threads(1)
    root = Path(__file__).resolve().parent.parent
    images = sorted((root / "data" / "sample").glob("*/*/*.jpg"))[::3][: args.images]
    with tempfile.TemporaryDirectory() as tmp:
        folder = ensure_tiny_model(TinySpec.model_validate({"arch": args.arch}), Path(tmp) / "m")
        spec = ModelSpec.model_validate(
            {
                "schema_version": 1,
                "kind": "model",
                "id": "bench",
                "title": "bench",
                "backend": "hf",
                "family": "gemma3" if args.arch == "gemma3" else "llava",
                "tiny": {"arch": args.arch},
                "test_model": True,
                "dtype": "float32",
                "generation": {"max_new_tokens": 12, "do_sample": False},
            }
        )
        context = BackendContext(device="cpu", batch_size=args.batch_size, checkpoint_dir=folder)
        backend = HFBackend(spec, context)
        requests = [
            Request(f"k{i}", Messages(None, QUESTION, (ImageRef(str(p), sha256_file(p)),)), OPTIONS)
            for i, p in enumerate(images)
        ]
        scorer = OptionScorer(backend)
        try:
            backend.generate(requests[:2])
            scorer.score(requests[:2])
            start = time.perf_counter()
            backend.generate(requests)
            generation = (time.perf_counter() - start) / len(requests)
            before = scorer.forward_passes
            start = time.perf_counter()
            scorer.score(requests)
            scoring = (time.perf_counter() - start) / len(requests)
            passes = scorer.forward_passes - before
        finally:
            backend.close()
    print(f"tiny {args.arch}, {len(requests)} images, batch size {args.batch_size}, one run")
    print(f"  generation (12 new tokens):       {generation * 1000:8.1f} ms per image")
    print(
        f"  likelihood ({len(OPTIONS)} options, {passes} passes): "
        f"{scoring * 1000:8.1f} ms per image"
    )
    print(f"  likelihood / generation:          {scoring / generation:8.2f}x")


if __name__ == "__main__":
    main()
