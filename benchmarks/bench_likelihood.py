"""Benchmark of option likelihood scoring against generation: cost per image, tiny models.

Run ``python benchmarks/bench_likelihood.py [--quick] [--arch gemma3] [--images 16]
[--batch-size 8] [--mode both|shared|full] [--context 0]``. Builds a tiny random-weight
model, then on the same sample images and a closed prompt with the brain tumour task's four
options, times in one run, after a warm-up: batched greedy generation (12 new tokens), and
option scoring with the prompt prefix shared (one prompt pass keeping the KV cache, then the
options from it: `shared`) and without (prompt recomputed per option row: `full`), for the
four option names and for the letters of a lettered variant (single tokens: the prompt pass
alone). Prints seconds per image, forward passes and the ratio likelihood / generation of
each, side by side. `--context N` puts N words before the question, for prompts as long as
real models' hundreds of image tokens make them. Exits 1 if an option could not be scored,
or (`--mode both`) the shared prefix gives other log-likelihoods than full sequences.
`--quick`: 4 images, batch size 2 (seconds once torch is imported).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

OPTIONS = ("glioma", "meningioma", "pituitary tumor", "no tumor")
QUESTION = (
    "Does this brain MRI show a tumour, and of which kind? Answer with one of: "
    + ", ".join(OPTIONS)
    + "."
)


LETTERS = ("A", "B", "C", "D")
TOLERANCE = 1e-4
"""The largest difference allowed between a log-likelihood with and without a shared prefix
(float32 on CPU; the tests ask 1e-5 of one batch)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default="gemma3", choices=["llava", "llava_next", "gemma3"])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--mode", default="both", choices=["both", "shared", "full"], help="prefix sharing"
    )
    parser.add_argument(
        "--context",
        type=int,
        default=0,
        help="words of clinical history put before the question: a long prompt, as real "
        "models' hundreds of image tokens make it",
    )
    parser.add_argument("--quick", action="store_true", help="4 images, batch size 2")
    args = parser.parse_args()
    if args.quick:
        args.images, args.batch_size = 4, 2
    history = " ".join(["history"] * args.context)
    question = f"{history}\n{QUESTION}" if history else QUESTION

    import torch

    from medbench.checkpoints.tiny import ensure_tiny_model
    from medbench.data.images import sha256_file
    from medbench.run.backends.base import BackendContext, Request
    from medbench.run.backends.hf import HFBackend
    from medbench.run.backends.hf.likelihood import OptionScorer
    from medbench.spec.model import ModelSpec, TinySpec
    from medbench.spec.prompts import ImageRef, Messages

    torch.set_num_threads(1)
    root = Path(__file__).resolve().parent.parent
    images = sorted((root / "data" / "sample").glob("*/*/*.jpg"))[::3][: args.images]
    modes = {"both": (False, True), "shared": (True,), "full": (False,)}[args.mode]
    timings: list[tuple[str, float, int]] = []
    problems: list[str] = []
    checked: list[str] = []
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

        def requests_of(options: tuple[str, ...]) -> list[Request]:
            return [
                Request(
                    f"k{i}", Messages(None, question, (ImageRef(str(p), sha256_file(p)),)), options
                )
                for i, p in enumerate(images)
            ]

        requests = requests_of(OPTIONS)
        try:
            backend.generate(requests[:2])
            start = time.perf_counter()
            backend.generate(requests)
            generation = (time.perf_counter() - start) / len(requests)
            for options, what in ((OPTIONS, "option names"), (LETTERS, "letters")):
                asked = requests_of(options)
                scored = {}
                for share in modes:
                    scorer = OptionScorer(backend, share_prefix=share)
                    scorer.score(asked[:2])
                    before = scorer.forward_passes
                    start = time.perf_counter()
                    scored[share] = scorer.score(asked)
                    seconds = (time.perf_counter() - start) / len(asked)
                    name = f"{what}, {'shared prefix' if share else 'full sequences'}"
                    if scorer.unshared:
                        name += f" [fell back: {'; '.join(sorted(scorer.unshared))}]"
                    timings.append((name, seconds, scorer.forward_passes - before))
                figures, found = score_problems(what, asked, scored)
                checked += figures
                problems += found
        finally:
            backend.close()
    print(
        f"tiny {args.arch}, {len(requests)} images, batch size {args.batch_size}, "
        f"{args.context} words of context, one run"
    )
    print(f"  {'generation (12 new tokens)':56} {generation * 1000:8.1f} ms per image")
    for name, seconds, passes in timings:
        label = f"likelihood, 4 {name} ({passes} passes)"
        print(f"  {label:56} {seconds * 1000:8.1f} ms per image  {seconds / generation:5.2f}x")
    for line in checked:
        print(f"  {line}")
    for problem in problems:
        print(f"FAILED: {problem}")
    if problems:
        raise SystemExit(1)


def score_problems(
    what: str, asked: list[Any], scored: dict[bool, list[Any]]
) -> tuple[list[str], list[str]]:
    """Requests left unscored, and (both modes run) shared-prefix log-likelihoods that differ
    from the full sequences' by more than TOLERANCE; and the largest difference, to print."""
    found: list[str] = []
    figures: list[str] = []
    for share, results in scored.items():
        mode = "shared prefix" if share else "full sequences"
        for request, result in zip(asked, results, strict=True):
            if result.error is not None or any(result.unscored) or len(result.total) != 4:
                found.append(f"{what}, {mode}, {request.key}: not scored ({result.error})")
    if len(scored) == 2:
        gaps = [
            max((abs(a - b) for a, b in zip(full.total, shared.total, strict=False)), default=0.0)
            for full, shared in zip(scored[False], scored[True], strict=True)
        ]
        figures.append(
            f"{what}: shared prefix against full sequences, largest difference "
            f"{max(gaps):.2g} (at most {TOLERANCE:g})"
        )
        found += [
            f"{what}, {request.key}: shared prefix differs by {gap:.2g} (over {TOLERANCE:g})"
            for request, gap in zip(asked, gaps, strict=True)
            if gap > TOLERANCE
        ]
    return figures, found


if __name__ == "__main__":
    main()
