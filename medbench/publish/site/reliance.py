"""What the site shows of image variants: F1 and image fragility per image variant, visual
reliance per task, and the pair differences; as (caption, columns, rows) for `Site.table`."""

from __future__ import annotations

from medbench.publish.record import Record, Scalar
from medbench.publish.site.layout import Col, Data

Spec = tuple[str, str, list[Col], Data]
"""A table to render: its name (after the page's), caption, columns and rows."""

IMAGE_VARIANT_COLUMNS = [
    Col("Task", "task", "head"),
    Col("Prompt family", "family", "text"),
    Col("Pipeline", "pipeline", "text"),
    Col("Image variant", "image_variant", "text"),
    Col("Transform", "transform", "text"),
    Col("Severity", "severity", "int"),
    Col("SSIM at the model's input", "ssim"),
    Col("Answers", "n", "int"),
    Col("f1_all [95% CI]", "f1_all", "est"),
    Col("Δ f1_all vs original [95% CI]", "f1_diff", "est", better="higher"),
    Col("Image fragility [95% CI]", "image_fragility", "est"),
]
RELIANCE_COLUMNS = [
    Col("Task", "task", "head"),
    Col("Prompt family", "family", "text"),
    Col("Pipeline", "pipeline", "text"),
    Col("Visual reliance, no image [95% CI]", "reliance_no_image", "est"),
    Col("Visual reliance, blank image [95% CI]", "reliance_blank", "est"),
    Col("f1_all with the image [95% CI]", "image_f1", "est"),
    Col("f1_all without the image [95% CI]", "no_image_f1", "est"),
    Col("Δ f1_all without the image [95% CI]", "no_image_f1_diff", "est"),
]
RELIANCE_PAIR_COLUMNS = [
    Col("Medical model", "model", "model", badges=False),
    Col("Base model", "base", "model", badges=False),
    Col("Task", "task", "text"),
    Col("Prompt family", "family", "text"),
    Col("Δ visual reliance [95% CI]", "reliance_diff", "est"),
    Col("p", "reliance_p"),
    Col("Δ f1_all without the image [95% CI]", "no_image_f1_diff", "est"),
    Col("p (no image)", "no_image_f1_p"),
]
RELIANCE_LABEL = "Visual reliance [95% CI]"
"""The index ranking's column beside the fragility index, where a suite measured it."""


def _sorted(rows: list[dict[str, Scalar]] | None, *keys: str) -> Data:
    return sorted(rows or [], key=lambda r: tuple(str(r.get(k)) for k in keys))


def model_tables(record: Record) -> list[Spec]:
    """A model page's image-variant tables (none for a record without image variants)."""
    suite, found = record.suite, []
    rows = _sorted(record.image_variants, "task", "family", "pipeline", "image_variant")
    if rows:
        caption = (
            f"{suite}: f1_all under each image variant (answers paired with the original "
            "image's under the same prompt; image fragility: the share that differ from them), "
            "with its severity and the SSIM between the original and the varied image as the "
            "model receives them"
        )
        found.append(("image-variants", caption, IMAGE_VARIANT_COLUMNS, rows))
    rows = _sorted(record.reliance, "task", "family", "pipeline")
    if rows:
        caption = (
            f"{suite}: visual reliance, the share of answers that change when the image is "
            "removed or blanked (0: the answers do not use the image)"
        )
        found.append(("reliance", caption, RELIANCE_COLUMNS, rows))
    return found


def pair_table(records: list[Record], suite: str, model: str | None = None) -> Spec | None:
    """Medical model minus its base in visual reliance and no-image F1 (paired by image)."""
    rows: Data = [
        row
        for record in records
        if record.suite == suite
        for row in record.reliance_pairs or []
        if model is None or model in (row.get("model"), row.get("base"))
    ]
    if not rows:
        return None
    caption = (
        f"{suite}: visual reliance of each pair, medical model minus its base (paired "
        "bootstrap CIs; p from McNemar's test, Obuchowski's where images repeat)"
    )
    rows = _sorted(rows, "model", "base", "task", "family")
    return "reliance-pairs", caption, RELIANCE_PAIR_COLUMNS, rows
