"""The image-variant tables of a suite, scored from one pairing of its answers: image variants
and visual reliance (`reliance`), severity curves (`severity`) and four quadrants
(`quadrants`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from medbench.score.quadrants import score_quadrants
from medbench.score.reliance import (
    IMAGE_KEYS,
    ImageLayout,
    _original_rows,
    has_image_variants,
    mean_ssim,
    pair_answers,
    score_image_variants,
    score_model_reliance,
    score_reliance,
    score_reliance_pairs,
    transforms_of,
)
from medbench.score.severity import score_severity


@dataclass
class ImageTables:
    """The image-variant tables (all empty when every answer saw the original image)."""

    image_variants: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per (model, task, family, pipeline, image variant): F1 and image fragility, with CIs;
    severity and mean SSIM."""
    reliance: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per (model, task, family, pipeline): visual reliance and F1 without the image."""
    models: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per (model, pipeline): visual reliance and no-image F1 over tasks, with CIs."""
    reliance_pairs: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per (model, base, task, family, pipeline): medical model minus its base."""
    severity: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per (model, task, family, pipeline, perturbation, severity): the severity curves."""
    severity_models: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per (model, pipeline): the mean relative robustness (rAUC) over curves."""
    quadrants: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per (model, task, family, pipeline): the shares of images in the four quadrants."""
    quadrant_models: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per (model, pipeline): the quadrant shares over tasks, images pooled."""


def score_images(encoded: pd.DataFrame, layout: ImageLayout) -> ImageTables:
    """Every image-variant table from the encoded answers of every image variant (replicates
    and failed jobs left out)."""
    if not has_image_variants(encoded):
        return ImageTables()
    paired = pair_answers(encoded, layout.clustered)
    transforms = transforms_of(encoded)
    image_rows = pd.DataFrame(
        _original_rows(encoded, layout)
        + score_image_variants(paired, layout, transforms, mean_ssim(encoded))
    )
    image_rows = image_rows.sort_values(IMAGE_KEYS, kind="stable").reset_index(drop=True)
    image_rows = image_rows.astype({"severity": "Int64"})
    if "ssim" not in image_rows.columns:
        image_rows["ssim"] = float("nan")
    image_rows = image_rows[[c for c in image_rows.columns if c != "ssim"] + ["ssim"]]
    severity, severity_models = score_severity(paired, image_rows, layout, transforms)
    quadrants, quadrant_models = score_quadrants(encoded, layout)
    return ImageTables(
        image_variants=image_rows,
        reliance=score_reliance(image_rows, layout),
        models=score_model_reliance(paired, layout),
        reliance_pairs=score_reliance_pairs(paired, layout),
        severity=severity,
        severity_models=severity_models,
        quadrants=quadrants,
        quadrant_models=quadrant_models,
    )
