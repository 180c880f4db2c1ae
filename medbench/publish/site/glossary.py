"""Where the methods page defines each column the site shows: column key -> anchor.

Every table header links to its definition; `tests/publish/test_site.py` fails when a
column of a built site has none, or when an anchor is missing from the methods page.
"""

from __future__ import annotations

DEFINED = {
    # what a row is
    "rank": "col-rank",
    "model": "col-model",
    "base": "col-base",
    "task": "col-task",
    "family": "col-family",
    "variant": "col-variant",
    "prompt": "col-variant",
    "pipeline": "col-pipeline",
    "n": "col-n",
    "n_images": "col-n",
    "image_variant": "image-variants",
    "transform": "image-variants",
    # per prompt variant
    "f1_all": "f1_all",
    "f1_answered": "f1_answered",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced_accuracy",
    "refusal_rate": "refusal_rate",
    "unparseable_rate": "unparseable_rate",
    "chance_f1": "chance",
    "worse_than_chance": "chance",
    # across a family's variants
    "disagreement": "disagreement",
    "prompt_sensitivity": "prompt_sensitivity",
    "flip_rate": "flip_rate",
    "refusal_flip_rate": "refusal_flip_rate",
    "fleiss_kappa": "fleiss_kappa",
    "spread": "spread",
    "worst_f1": "worst_f1",
    "pdr": "pdr",
    "noise_floor": "noise-floor",
    "noise_mark": "noise-floor",
    # per model
    "all_variants_f1": "all_variants_f1",
    "all_variants_kappa": "all_variants_kappa",
    "mean_kappa": "mean_kappa",
    "mean_worst_kappa": "mean_kappa",
    "kappa": "kappa",
    "fragility_index": "fragility_index",
    "mean_f1_all": "mean_f1_all",
    "mean_worst_f1": "mean_worst_f1",
    "visual_reliance": "visual_reliance",
    # pairs
    "f1_diff": "f1_diff",
    "mcnemar_p": "mcnemar",
    "mcnemar_p_holm": "mcnemar",
    "test": "mcnemar",
    "fragility_diff": "fragility_diff",
    # image variants and reliance
    "image_fragility": "image_fragility",
    "reliance_no_image": "visual_reliance",
    "reliance_blank": "visual_reliance",
    "image_f1": "no_image_f1",
    "no_image_f1": "no_image_f1",
    "no_image_f1_diff": "no_image_f1",
    "reliance_diff": "reliance-pairs",
    "reliance_p": "reliance-pairs",
    "no_image_f1_p": "reliance-pairs",
    # severity curves and the four quadrants
    "ssim": "ssim",
    "severity": "severity",
    "perturbation": "severity",
    "relative_f1": "relative_f1",
    "rauc": "rauc",
    "reference": "col-variant",
    "ablation": "quadrants",
    "ideal": "quadrants",
    "fragile": "quadrants",
    "worst": "quadrants",
    "dangerous": "dangerous",
    # likelihood answers and calibration
    "mean_confidence": "confidence",
    "ece": "ece",
    "brier": "brier",
    "aurc": "aurc",
    # the knowledge ladder's rungs
    "direct_f1_mean": "rung-direct",
    "direct_f1_best": "rung-direct",
    "direct_best_variant": "rung-direct",
    "likelihood_f1_mean": "rung-likelihood",
    "likelihood_f1_best": "rung-likelihood",
    "likelihood_best_variant": "rung-likelihood",
    "described_f1": "rung-described",
    "described_f1_mean": "rung-described",
    "described_best": "rung-described",
    "probe_vision_f1": "rung-probe",
    "probe_projected_f1": "rung-probe",
    "pixel_f1": "rung-pixel",
    "reading": "ladder-reading",
}
"""Column key -> the `id` of its definition on `methods.html`."""


def definition(key: str) -> str | None:
    """The anchor defining column `key`: its own, its estimate's for an interval bound
    `name_lo` / `name_hi`, that of a per-task column `name.<task>`, or f1_all for a task page's
    `family/variant` column; None when the methods page has none."""
    if key in DEFINED:
        return DEFINED[key]
    if key.endswith(("_lo", "_hi")) and key[:-3] in DEFINED:
        return DEFINED[key[:-3]]
    if "/" in key:
        return "f1_all"
    return DEFINED.get(key.split(".", 1)[0]) if "." in key else None


__all__ = ["DEFINED", "definition"]
