"""Four quadrants per image: consistent across wordings or not, relying on the image or not."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from medbench.score.answers import ANSWER_COLUMNS, ScoringLayout
from medbench.score.parsing import PARSER_VERSION
from medbench.score.quadrants import QUADRANTS
from medbench.score.scoring import score_answers
from medbench.score.summary import WIDTH, robustness_lines
from tests.score.frames import one_row

TRUTH = {"s1": "a", "s2": "a", "s3": "b", "s4": "b"}
ABLATIONS = {"no-image": "no_image", "blank": "blank"}


def _layout(
    ablations: dict[str, str] | None = None, groups: dict[str, str] | None = None
) -> ScoringLayout:
    tasks = {"t": {"f": ["a", "b"]}, "u": {"f": ["a", "b"]}}
    return ScoringLayout(
        classes=tasks,
        variants={"f": ["v1", "v2", "v3"]},
        references={"f": "v2"},
        answer_kinds={"f": "label"},
        n_boot=200,
        groups=groups or {},
        image_variants=ABLATIONS if ablations is None else ablations,
    )


def _row(
    model: str,
    task: str,
    variant: str,
    sample: str,
    image: str,
    parsed: str | None,
    status: str | None = None,
    group: str | None = None,
) -> dict[str, Any]:
    truth = TRUTH.get(sample.split("-")[0], "a")
    status = status or ("refusal" if parsed is None else "answer")
    transform = "" if image == "original" else f'{{"transform":"{ABLATIONS[image]}"}}'
    values = (model, task, "f", variant, "direct", sample, truth, truth, parsed or "I cannot")
    values += (None, status, parsed, "r", PARSER_VERSION, parsed == truth, group, 0)
    return dict(zip(ANSWER_COLUMNS, (*values, image, transform, math.nan), strict=True))


def _image(
    model: str,
    sample: str,
    original: list[str | None],
    without: dict[str, str | None],
    task: str = "t",
    group: str | None = None,
) -> list[dict[str, Any]]:
    """One image's answers: on the original under v1, v2, v3; under each ablation in `without`
    with the reference wording (v2) only, as a suite asking ablations of the reference does."""
    rows = [
        _row(model, task, variant, sample, "original", said, group=group)
        for variant, said in zip(("v1", "v2", "v3"), original, strict=True)
    ]
    return rows + [
        _row(model, task, "v2", sample, image, said, group=group) for image, said in without.items()
    ]


def _score(rows: list[dict[str, Any]], layout: ScoringLayout | None = None) -> Any:
    return score_answers(pd.DataFrame(rows), layout or _layout())


def test_a_model_answering_alike_without_the_image_is_all_dangerous() -> None:
    said = {"s1": "a", "s2": "b", "s3": "a", "s4": "b"}
    rows = [
        row
        for sample, answer in said.items()
        for row in _image("blind", sample, [answer] * 3, {"no-image": answer, "blank": answer})
    ]
    tables = _score(rows)
    row = one_row(tables.quadrants, model="blind")
    assert (row.dangerous, row.dangerous_lo, row.dangerous_hi) == (1.0, 1.0, 1.0)
    assert (row.ideal, row.fragile, row.worst) == (0.0, 0.0, 0.0)
    assert (row.n_images, row.reference, row.ablation) == (4, "v2", "no_image+blank")
    model = one_row(tables.quadrant_models, model="blind")
    assert (model.dangerous, model.n_images, model.n_tasks) == (1.0, 4, 1)


def _one_in_each() -> list[dict[str, Any]]:
    """s1 ideal, s2 fragile, s3 dangerous, s4 worst (a refusal is an answer: s4's v3)."""
    return (
        _image("m", "s1", ["a", "a", "a"], {"no-image": "b"})
        + _image("m", "s2", ["a", "b", "a"], {"no-image": "a"})
        + _image("m", "s3", ["b", "b", "b"], {"no-image": "b"})
        + _image("m", "s4", ["b", "b", None], {"no-image": "b"})
    )


def test_each_quadrant_is_hand_computed() -> None:
    row = one_row(_score(_one_in_each()).quadrants, model="m")
    for name in QUADRANTS:
        assert row[name] == pytest.approx(0.25), name
        assert 0.0 <= row[f"{name}_lo"] <= row[name] <= row[f"{name}_hi"] <= 1.0
    assert sum(row[name] for name in QUADRANTS) == pytest.approx(1.0)
    assert (row.n_images, row.ablation) == (4, "no_image")


def test_refusals_under_every_wording_are_consistent() -> None:
    rows = _image("m", "s1", [None, None, None], {"no-image": None})
    rows += _image("m", "s2", [None, None, "a"], {"no-image": "a"})
    row = one_row(_score(rows).quadrants, model="m")
    # s1 refuses alike with and without the image: dangerous; s2 differs across wordings and
    # its reference answer (a refusal) differs from its no-image answer: fragile
    assert (row.dangerous, row.fragile, row.n_images) == (0.5, 0.5, 2)


def test_images_without_two_wordings_or_an_ablation_are_left_out() -> None:
    rows = _image("m", "s1", ["a", "a", "a"], {"no-image": "a"})  # dangerous
    # s2: only the reference wording answered (the others failed): not classified
    rows += _image("m", "s2", ["a", "a", "a"], {"no-image": "b"})
    for r in rows:
        if r["sample"] == "s2" and r["variant"] != "v2":
            r["status"], r["parsed"] = "error", None
    # s3: no ablation asked; s4: the ablation asked under another wording than the reference
    rows += _image("m", "s3", ["b", "b", "b"], {})
    rows += _image("m", "s4", ["b", "a", "b"], {})
    rows.append(_row("m", "t", "v1", "s4", "no-image", "b"))
    row = one_row(_score(rows).quadrants, model="m")
    assert (row.n_images, row.dangerous) == (1, 1.0)


def test_either_ablation_changing_the_answer_is_reliance() -> None:
    rows = _image("m", "s1", ["a", "a", "a"], {"no-image": "a", "blank": "b"})
    rows += _image("m", "s2", ["a", "a", "a"], {"blank": "a"})
    row = one_row(_score(rows).quadrants, model="m")
    # s1: same without the image but not with a blank one: it looks; s2: blank alone, same
    assert (row.ideal, row.dangerous, row.ablation) == (0.5, 0.5, "no_image+blank")


def test_blank_serves_where_no_image_was_not_asked() -> None:
    rows = _one_in_each()
    for r in rows:
        if r["image_variant"] == "no-image":
            r["image_variant"], r["image_transform"] = "blank", '{"transform":"blank"}'
    tables = _score(rows, _layout({"blank": "blank"}))
    row = one_row(tables.quadrants, model="m")
    assert (row.dangerous, row.ablation) == (0.25, "blank")


def test_no_ablation_makes_no_quadrants() -> None:
    rows = [_row("m", "t", v, s, "original", "a") for v in ("v1", "v2", "v3") for s in ("s1", "s2")]
    rows.append(_row("m", "t", "v2", "s1", "blank", "a"))
    rows[-1]["image_transform"] = '{"quality":30,"transform":"jpeg"}'
    tables = _score(rows, _layout({"blank": "jpeg"}))
    assert tables.quadrants.empty and tables.quadrant_models.empty


def test_model_shares_pool_the_images_of_its_tasks() -> None:
    rows = _one_in_each()
    rows += _image("m", "s1", ["a", "a", "a"], {"no-image": "a"}, task="u")
    rows += _image("m", "s3", ["b", "b", "b"], {"no-image": "b"}, task="u")
    tables = _score(rows)
    assert one_row(tables.quadrants, task="u").dangerous == 1.0
    model = one_row(tables.quadrant_models, model="m")
    # 1 of t's 4 images and both of u's: 3 of 6 (the mean of the shares would be 0.625)
    assert model.dangerous == pytest.approx(0.5) and model.worst == pytest.approx(1 / 6)
    assert (model.n_images, model.n_tasks) == (6, 2)
    assert 0.0 <= model.dangerous_lo <= 0.5 <= model.dangerous_hi <= 1.0
    assert list(tables.quadrant_models.columns[:7]) == [
        "model",
        "pipeline",
        "n_images",
        "n_tasks",
        "dangerous",
        "dangerous_lo",
        "dangerous_hi",
    ]


def _patients(copies: int, groups: bool) -> list[dict[str, Any]]:
    """_one_in_each with `copies` identical images per patient (grouped by patient or not)."""
    rows = []
    for r in _one_in_each():
        for i in range(copies):
            sample = f"{r['sample']}-{i}"
            rows.append(r | {"sample": sample, "group": r["sample"] if groups else None})
    return rows


def test_clustered_tasks_resample_patients_not_images() -> None:
    columns = [f"{name}{end}" for name in QUADRANTS for end in ("", "_lo", "_hi")]
    clustered = _score(_patients(8, True), _layout(groups={"t": "pattern ^(s[0-9])"}))
    per_patient = _score(_patients(1, False))
    flat = _score(_patients(8, False))
    for table in ("quadrants", "quadrant_models"):
        pd.testing.assert_frame_equal(
            getattr(clustered, table)[columns], getattr(per_patient, table)[columns]
        )
    # resampled by image, the eight copies look like 32 independent images: narrower
    wide, narrow = clustered.quadrants.iloc[0], flat.quadrants.iloc[0]
    assert narrow.dangerous_hi - narrow.dangerous_lo < wide.dangerous_hi - wide.dangerous_lo


def test_robustness_lines_fit_the_terminal() -> None:
    long_id = "a-model-with-a-really-long-identifier-that-does-not-fit-in-80-v2"
    quadrants = pd.DataFrame(
        [
            {"model": "eye", "pipeline": "direct", "dangerous": 0.25},
            {"model": "eye", "pipeline": "described", "dangerous": 0.5},
            {"model": long_id, "pipeline": "direct", "dangerous": 1.0},
        ]
    ).assign(dangerous_lo=0.0, dangerous_hi=1.0)
    severity = pd.DataFrame(
        [{"model": "eye", "pipeline": "direct", "rauc": 0.8, "rauc_lo": 0.7, "rauc_hi": 0.9}]
    )
    lines = robustness_lines(severity, quadrants)
    assert lines[2:] == [
        f"  {long_id}:",
        "    dangerous 1.00 [0.00-1.00]",
        "  eye: dangerous 0.25 [0.00-1.00], rAUC 0.80 [0.70-0.90]",
    ]
    assert all(len(line) <= WIDTH for line in lines)
    assert robustness_lines(pd.DataFrame(), pd.DataFrame()) == []


def test_results_and_records_hold_the_quadrant_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medbench.publish.verify import verify_records
    from medbench.publish.writing import write_record
    from medbench.score.results import write_results
    from tests.leaderboard_data import answer_keys, model_spec, provenance

    answers = pd.DataFrame(_one_in_each())
    layout = _layout()
    tables = score_answers(answers, layout)
    written = {p.name for p in write_results(tmp_path / "r", "q", answers, tables, layout, [])}
    assert {"quadrants.csv", "quadrant_models.csv"} <= written
    assert not {"severity.csv", "severity_models.csv"} & written
    monkeypatch.chdir(tmp_path)
    write_record(
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
    assert verify_records(Path("leaderboard")) == []
