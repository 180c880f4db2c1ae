"""Severity curves: F1, image fragility and SSIM along each perturbation, and rAUC."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from medbench.score.answers import ANSWER_COLUMNS, ScoringLayout
from medbench.score.parsing import PARSER_VERSION
from medbench.score.reliance import describe_transform
from medbench.score.scoring import score_answers
from tests.score.frames import one_row

TRUTH = {"s1": "a", "s2": "a", "s3": "b", "s4": "b"}
HALF = {"s1": "a", "s2": "b", "s3": "a", "s4": "b"}
"""Answers whose macro-F1 against TRUTH is exactly 1/2 (each class: tp 1, fp 1, fn 1)."""
TRANSFORMS: dict[str, dict[str, Any]] = {
    "over-1": {"transform": "exposure", "direction": "over", "severity": 1},
    "over-5": {"transform": "exposure", "direction": "over", "severity": 5},
    "under-2": {"transform": "exposure", "direction": "under", "severity": 2},
    "bias-3": {"transform": "bias_field", "severity": 3},
    "jpeg": {"transform": "jpeg", "quality": 30},
    "no_image": {"transform": "no_image"},
}
SSIM = {"over-1": 0.9, "over-5": 0.5, "under-2": 0.7, "bias-3": 0.8}


def _layout(groups: dict[str, str] | None = None, n_boot: int = 200) -> ScoringLayout:
    return ScoringLayout(
        classes={"t": {"f": ["a", "b"]}},
        variants={"f": ["v1", "v2"]},
        references={"f": "v1"},
        answer_kinds={"f": "label"},
        n_boot=n_boot,
        groups=groups or {},
        image_variants={k: str(v["transform"]) for k, v in TRANSFORMS.items()},
    )


def _row(
    model: str,
    variant: str,
    sample: str,
    image: str,
    parsed: str | None,
    truth: str,
    ssim: float = math.nan,
    group: str | None = None,
) -> dict[str, Any]:
    status = "refusal" if parsed is None else "answer"
    transform = "" if image == "original" else json.dumps(TRANSFORMS[image], sort_keys=True)
    values = (model, "t", "f", variant, "direct", sample, truth, truth, parsed or "I cannot")
    values += (None, status, parsed, "r", PARSER_VERSION, parsed == truth, group, 0)
    return dict(zip(ANSWER_COLUMNS, (*values, image, transform, ssim), strict=True))


def _model(
    model: str,
    under: dict[str, dict[str, str | None]],
    truth: dict[str, str] = TRUTH,
    groups: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """`model`'s answers under both prompt variants to each image variant in `under`
    (`original` included), each sample's SSIM being the variant's in SSIM."""
    return [
        _row(
            model,
            variant,
            sample,
            image,
            said[sample],
            truth[sample],
            SSIM.get(image, math.nan),
            (groups or {}).get(sample),
        )
        for image, said in under.items()
        for variant in ("v1", "v2")
        for sample in truth
    ]


def _halving() -> list[dict[str, Any]]:
    """Right on the original image and at exposure severity 1; F1 1/2 at severity 5 (and at
    underexposure 2); right under the bias field; no change with JPEG."""
    return _model(
        "m",
        {
            "original": dict(TRUTH),
            "over-1": dict(TRUTH),
            "over-5": dict(HALF),
            "under-2": dict(HALF),
            "bias-3": dict(TRUTH),
            "jpeg": dict(TRUTH),
            "no_image": dict.fromkeys(TRUTH, "a"),
        },
    )


@pytest.mark.parametrize(
    ("transform", "expected"),
    [
        (
            {"transform": "exposure", "direction": "under", "severity": 2},
            ("exposure(direction=under)", 2),
        ),
        ({"transform": "bias_field", "severity": 5}, ("bias_field", 5)),
        ({"transform": "motion", "angle": 45, "severity": 3.0}, ("motion(angle=45)", 3)),
        ({"transform": "jpeg", "quality": 30}, ("jpeg(quality=30)", None)),
        ({"transform": "stain", "severity": "high"}, ("stain(severity=high)", None)),
        ({"transform": "stain", "severity": True}, ("stain(severity=true)", None)),
    ],
)
def test_describe_transform_names_the_perturbation_without_its_severity(
    transform: dict[str, Any], expected: tuple[str, int | None]
) -> None:
    assert describe_transform(json.dumps(transform)) == expected


def test_describe_transform_of_the_original_or_bad_json_is_no_perturbation() -> None:
    assert describe_transform("") == ("", None)
    assert describe_transform("not json") == ("", None)
    assert describe_transform("[1, 2]") == ("", None)


def test_image_variants_carry_severity_and_the_mean_ssim_over_images() -> None:
    rows = _halving()
    # one image's two answers disagree on SSIM, another has none: each image counts once
    for r in rows:
        if r["image_variant"] == "over-5" and r["sample"] == "s1":
            r["image_ssim"] = 0.2 if r["variant"] == "v1" else 0.4  # image mean 0.3
        if r["image_variant"] == "over-5" and r["sample"] == "s2":
            r["image_ssim"] = math.nan
    tables = score_answers(pd.DataFrame(rows), _layout())
    image = tables.image_variants
    assert str(image["severity"].dtype) == "Int64"
    assert one_row(image, image_variant="over-5").severity == 5
    assert pd.isna(one_row(image, image_variant="jpeg").severity)
    assert pd.isna(one_row(image, image_variant="original").severity)
    assert one_row(image, image_variant="over-5").ssim == pytest.approx((0.3 + 0.5 + 0.5) / 3)
    assert one_row(image, image_variant="over-1").ssim == pytest.approx(0.9)
    assert math.isnan(one_row(image, image_variant="no_image").ssim)
    assert list(image.columns)[-1] == "ssim"


def test_frames_without_the_ssim_column_score_nan_ssim() -> None:
    frame = pd.DataFrame(_halving()).drop(columns=["image_ssim"])
    tables = score_answers(frame, _layout())
    assert tables.image_variants["ssim"].isna().all()
    assert math.isnan(one_row(tables.severity, perturbation="bias_field", severity=3).ssim)


def test_severity_curve_of_a_halving_f1_is_hand_computed() -> None:
    tables = score_answers(pd.DataFrame(_halving()), _layout())
    curve = tables.severity[tables.severity["perturbation"] == "exposure(direction=over)"]
    assert list(curve["severity"]) == [0, 1, 5]
    assert list(curve["image_variant"]) == ["original", "over-1", "over-5"]
    assert set(curve["transform"]) == {"exposure"}
    clean, mild, severe = (curve.iloc[i] for i in range(3))
    assert (clean.f1_all, clean.image_fragility, clean.ssim, clean.relative_f1) == (1, 0, 1, 1)
    assert (clean.n, clean.n_images) == (8, 4)
    assert (mild.f1_all, mild.image_fragility, mild.ssim) == (1.0, 0.0, pytest.approx(0.9))
    # HALF differs from the truth on s2 and s3 under both prompt variants: 4 of 8 answers
    assert severe.f1_all == pytest.approx(0.5) and severe.image_fragility == pytest.approx(0.5)
    assert severe.relative_f1 == pytest.approx(0.5) and severe.ssim == pytest.approx(0.5)
    # rAUC: the mean over the levels present of F1_s / F1_0 = (1 + 1/2) / 2
    assert list(curve["rauc"]) == pytest.approx([0.75] * 3)
    assert clean.rauc_lo <= 0.75 <= clean.rauc_hi
    for row in curve.itertuples():
        assert 0 <= row.f1_all_lo <= row.f1_all <= row.f1_all_hi <= 1
        assert 0 <= row.image_fragility_lo <= row.image_fragility <= row.image_fragility_hi <= 1


def test_levels_read_their_numbers_off_the_image_variant_rows() -> None:
    tables = score_answers(pd.DataFrame(_halving()), _layout())
    for name in ("over-1", "over-5", "under-2", "bias-3"):
        level = one_row(tables.severity, image_variant=name)
        image = one_row(tables.image_variants, image_variant=name)
        for column in ("n", "n_images", "f1_all", "f1_all_lo", "f1_all_hi", "image_fragility"):
            assert level[column] == image[column], (name, column)


def test_other_parameters_make_other_curves_and_no_severity_makes_none() -> None:
    tables = score_answers(pd.DataFrame(_halving()), _layout())
    assert sorted(set(tables.severity["perturbation"])) == [
        "bias_field",
        "exposure(direction=over)",
        "exposure(direction=under)",
    ]
    under = tables.severity[tables.severity["perturbation"] == "exposure(direction=under)"]
    assert list(under["severity"]) == [0, 2]
    assert list(under["rauc"]) == pytest.approx([0.5] * 2)
    assert not (tables.severity["image_variant"].isin(["jpeg", "no_image"])).any()


def test_model_rauc_is_the_mean_over_curves() -> None:
    tables = score_answers(pd.DataFrame(_halving()), _layout())
    row = one_row(tables.severity_models, model="m")
    # exposure over (1 + 1/2) / 2, underexposure 1/2, bias field 1
    assert row.rauc == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    assert row.rauc_lo <= row.rauc <= row.rauc_hi
    assert (row.n_curves, row.n_curves_undefined, row.n_tasks, row.n_perturbations) == (3, 0, 1, 3)


def test_rauc_with_a_clean_f1_of_zero_is_nan_and_counted() -> None:
    refusing = dict.fromkeys(TRUTH)
    rows = _model("r", {"original": refusing, "over-1": dict(TRUTH), "no_image": refusing})
    tables = score_answers(pd.DataFrame(rows), _layout())
    curve = tables.severity
    assert list(curve["severity"]) == [0, 1]
    assert curve["rauc"].isna().all() and curve["relative_f1"].isna().all()
    assert curve.iloc[0].f1_all == 0.0
    row = one_row(tables.severity_models, model="r")
    assert math.isnan(row.rauc) and (row.n_curves, row.n_curves_undefined) == (0, 1)


def _patients(copies: int) -> tuple[dict[str, str], dict[str, str]]:
    """Four patients of `copies` images each: truth and group of each image."""
    truth = {f"{s}-{i}": t for s, t in TRUTH.items() for i in range(copies)}
    return truth, {sample: sample.split("-")[0] for sample in truth}


def _copied(copies: int, groups: bool) -> list[dict[str, Any]]:
    truth, group = _patients(copies)
    half = {sample: HALF[sample.split("-")[0]] for sample in truth}
    return _model(
        "m",
        {"original": dict(truth), "over-5": half, "no_image": dict(truth)},
        truth,
        group if groups else None,
    )


def test_clustered_tasks_resample_patients_not_images() -> None:
    pattern = {"t": "pattern ^(s[0-9])"}
    clustered = score_answers(pd.DataFrame(_copied(8, True)), _layout(pattern)).severity
    per_patient = score_answers(pd.DataFrame(_copied(1, False)), _layout()).severity
    flat = score_answers(pd.DataFrame(_copied(8, False)), _layout()).severity
    columns = ["f1_all", "f1_all_lo", "f1_all_hi", "rauc", "rauc_lo", "rauc_hi"]
    # eight identical copies of each patient's images, resampled by patient: the intervals
    # of one image per patient; resampled by image, narrower
    pd.testing.assert_frame_equal(
        clustered[columns].reset_index(drop=True), per_patient[columns].reset_index(drop=True)
    )
    severe = clustered.iloc[1]
    assert flat.iloc[1].rauc_hi - flat.iloc[1].rauc_lo < severe.rauc_hi - severe.rauc_lo


def test_results_and_records_hold_the_severity_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medbench.publish.reading import read_record
    from medbench.publish.verify import verify_records
    from medbench.publish.writing import write_record
    from medbench.score.results import write_results
    from tests.leaderboard_data import answer_keys, model_spec, provenance

    answers = pd.DataFrame(_halving()).drop(columns=["image_ssim"])
    layout = _layout(n_boot=50)
    tables = score_answers(answers, layout)
    written = {p.name for p in write_results(tmp_path / "r", "q", answers, tables, layout, [])}
    assert {"severity.csv", "severity_models.csv"} <= written
    severity = pd.read_csv(tmp_path / "r" / "severity.csv")
    assert list(severity.columns[:6]) == [
        "model",
        "task",
        "family",
        "pipeline",
        "perturbation",
        "transform",
    ]
    assert list(severity["severity"]) == [0, 3, 0, 1, 5, 0, 2]  # bias_field, over, under
    monkeypatch.chdir(tmp_path)
    path = write_record(
        Path("leaderboard"),
        suite="quickstart",
        spec=model_spec("m"),
        answers=answers,
        answer_keys=answer_keys(answers, "m"),
        tables=tables,
        layout=layout,
        provenance=provenance(["t"], n_images=4),
        allow_test_models=True,
    )
    record = read_record(path)
    assert [r["severity"] for r in record.severity or []] == [0, 3, 0, 1, 5, 0, 2]
    assert [r["rauc"] for r in record.severity_models or []] == [pytest.approx(0.75)]
    assert verify_records(Path("leaderboard")) == []
    data = json.loads(path.read_text())
    data["severity_models"][0]["rauc"] = 0.9
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    assert verify_records(Path("leaderboard")) == [
        "leaderboard/quickstart/m.json: severity_models[0].rauc: recorded 0.9, re-derived 0.75"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"severity":2,"transform":"bias_field","seed":0}', ("bias_field", 2)),
        (
            '{"direction":"under","severity":4,"transform":"exposure"}',
            ("exposure(direction=under)", 4),
        ),
        ('{"quality":30,"transform":"jpeg"}', ("jpeg(quality=30)", None)),
        ('{"severity":"high","transform":"stain"}', ("stain(severity=high)", None)),
        ("not json", ("", None)),
    ],
)
def test_describe_transform_names_the_physics_without_seed_or_severity(
    text: str, expected: tuple[str, int | None]
) -> None:
    from medbench.score.reliance import describe_transform

    assert describe_transform(text) == expected
