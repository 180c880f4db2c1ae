"""Calibrate the medical perturbations' severities to their SSIM bands, and print the tables.

Each fault's physical parameter at each severity is found by bisection on the mean SSIM (the
perturbed image against the original) over the sample images of the fault's modality
(`data/sample/<task>/*/*`, each resized to a square by bicubic resampling), toward the centre
of the severity's band in `medbench.data.variants.medical.SEVERITY_SSIM`.

The band must hold at every size a model receives (336 px for LLaVA, 896 px for Gemma 3), and
SSIM itself reads a size's images otherwise: its window is 11 px at any size, so on an image
upsampled further it sees less local contrast, and the same change scores a smaller deficit
(1 - SSIM): down to 0.63 times the 336 px one at 896 px for stain on 224 px histology patches.
So the bisection runs at the first size (cheap) toward a target that puts the geometric mean
of the deficits at every size on the band's geometric centre: the deficit ratio between the
sizes is measured at the parameter found, the target corrected by it, and the bisection run
again until the ratio settles. The seeded faults draw with seed 0 and each image's sha256.

Run: .venv/bin/python scripts/calibrate_severities.py [--only NAME ...] [--quick]
(quick: 3 images per modality at 48 and 96 px, a coarse bisection; for the tests)
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from medbench.data.images import load_image, sha256_file
from medbench.data.variants import medical
from medbench.data.variants.similarity import ssim
from medbench.data.variants.transforms import as_grey_if_grey, generator

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
SIDES = (336, 896)
SEED = 0

Sample = list[tuple[Image.Image, str]]
"""Images (resized) with the sha256 of their files."""
Perturb = Callable[[Image.Image, float, str], Image.Image]


@dataclass(frozen=True)
class Fault:
    """A perturbation with one free physical parameter, and the modality it is measured on."""

    name: str
    task: str
    perturb: Perturb
    high: float
    """A parameter beyond every severity's (the bisection's upper end; the lower is 0)."""
    table: dict[int, float]
    """The constants in use (printed beside the new ones)."""


FAULTS = (
    Fault(
        "bias_field",
        "brain_tumor_mri",
        lambda im, v, sha: medical.add_bias_field(im, v, generator(SEED, sha)),
        4.0,
        medical.BIAS_FIELD_LOG_GAIN,
    ),
    Fault(
        "motion",
        "brain_tumor_mri",
        lambda im, v, sha: medical.add_motion(im, v, generator(SEED, sha)),
        0.5,
        medical.MOTION_LINES,
    ),
    *(
        Fault(
            f"exposure/{d}",
            "pneumonia_cxr",
            lambda im, v, sha, d=d: medical.shift_exposure(im, v, d),
            0.45,
            medical.EXPOSURE_SHIFT[d],
        )
        for d in ("over", "under")
    ),
    *(
        Fault(
            f"illumination/{c}",
            "skin_lesion",
            lambda im, v, sha, c=c: medical.light_unevenly(im, v, c),
            0.95,
            medical.ILLUMINATION_FALLOFF[c],
        )
        for c in ("warm", "cool")
    ),
    Fault(
        "stain",
        "histopathology",
        lambda im, v, sha: medical.vary_stain(im, v, generator(SEED, sha)),
        0.5,
        medical.STAIN_SPREAD,
    ),
)


def sample_images(task: str, side: int, limit: int | None = None) -> Sample:
    """The sample images of `task` (grey ones grey, as the run derives them), `side` square."""
    paths = sorted(p for p in (SAMPLE / task).glob("*/*") if p.is_file())[:limit]
    return [
        (
            as_grey_if_grey(load_image(p)).resize((side, side), Image.Resampling.BICUBIC),
            sha256_file(p),
        )
        for p in paths
    ]


def mean_ssim(perturb: Perturb, value: float, images: Sample) -> float:
    return sum(ssim(im, perturb(im, value, sha)) for im, sha in images) / len(images)


def band_centre(severity: int) -> float:
    """The band's centre as a deficit: the geometric mean of its edges' deficits."""
    low, high = medical.SEVERITY_SSIM[severity]
    return math.sqrt((1 - low) * (1 - high))


def bisect(perturb: Perturb, images: Sample, deficit: float, high: float, steps: int) -> float:
    """The parameter in (0, `high`) whose mean SSIM deficit on `images` is `deficit`."""
    low = 0.0
    for _ in range(steps):
        middle = (low + high) / 2
        found = 1 - mean_ssim(perturb, middle, images)
        if abs(found / deficit - 1) < 0.005:
            return middle
        low, high = (middle, high) if found < deficit else (low, middle)
    return (low + high) / 2


def calibrate(
    fault: Fault, samples: dict[int, Sample], steps: int
) -> dict[int, tuple[float, dict[int, float]]]:
    """Severity -> the parameter found and the mean SSIM it gives at each size."""
    first, *others = samples
    found: dict[int, tuple[float, dict[int, float]]] = {}
    ratio = 1.0  # the deficits at the other sizes over the first size's, geometric mean
    for severity in sorted(medical.SEVERITY_SSIM):
        target = band_centre(severity)
        for _ in range(4):
            value = bisect(
                fault.perturb, samples[first], target / math.sqrt(ratio), fault.high, steps
            )
            means = {side: mean_ssim(fault.perturb, value, samples[side]) for side in samples}
            deficits = [1 - means[side] for side in others]
            new = math.prod(deficits) ** (1 / len(deficits)) / (1 - means[first]) if others else 1
            settled = abs(new / ratio - 1) < 0.02
            ratio = new
            if settled:
                break
        found[severity] = (value, means)
        print(f"  {fault.name} {severity}: {value:.4f} {means}", file=sys.stderr, flush=True)
    return found


def report(fault: Fault, found: dict[int, tuple[float, dict[int, float]]]) -> str:
    lines = [f"{fault.name} ({fault.task}):"]
    lines.append(f"  table: {{{', '.join(f'{s}: {v:.4g}' for s, (v, _) in found.items())}}}")
    lines.append(f"  in use: {fault.table}")
    for severity, (_, means) in found.items():
        low, high = medical.SEVERITY_SSIM[severity]
        shown = "  ".join(f"{side} px {m:.4f}" for side, m in means.items())
        inside = all(low < m < high for m in means.values())
        lines.append(
            f"  severity {severity} [{low}, {high}]: {shown}{'' if inside else '  OUTSIDE'}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="faults to calibrate (default: all)")
    parser.add_argument("--quick", action="store_true", help="a few small images, coarsely")
    args = parser.parse_args(argv)
    sides, limit, steps = ((48, 96), 3, 4) if args.quick else (SIDES, None, 16)
    chosen = [f for f in FAULTS if not args.only or f.name.split("/")[0] in args.only]
    if not chosen:
        parser.error(f"--only: choose from {sorted({f.name.split('/')[0] for f in FAULTS})}")
    for fault in chosen:
        samples = {side: sample_images(fault.task, side, limit) for side in sides}
        print(report(fault, calibrate(fault, samples, steps)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
