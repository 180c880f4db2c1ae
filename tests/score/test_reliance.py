"""Image-variant scoring: image fragility, visual reliance and its pair statistics."""

from __future__ import annotations

import gzip
import io
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from medbench.score.answers import ANSWER_COLUMNS, ScoringLayout
from medbench.score.parsing import PARSER_VERSION
from medbench.score.scoring import score_answers
from tests.score.frames import one_row

TRUTH = {"s1": "a", "s2": "a", "s3": "b", "s4": "b"}
TRANSFORMS = {"blank": "blank", "jpeg": "jpeg", "no_image": "no_image"}


def _layout(pairs: list[tuple[str, str]] | None = None, n_boot: int = 200) -> ScoringLayout:
    return ScoringLayout(
        classes={"t": {"f": ["a", "b"]}},
        variants={"f": ["v1", "v2"]},
        references={"f": "v1"},
        answer_kinds={"f": "label"},
        pairs=pairs or [],
        n_boot=n_boot,
        image_variants=dict(TRANSFORMS),
    )


def _row(model: str, variant: str, sample: str, image: str, parsed: str | None) -> tuple:
    truth = TRUTH[sample]
    status = "refusal" if parsed is None else "answer"
    transform = "" if image == "original" else f'{{"kind":"{TRANSFORMS[image]}"}}'
    return (
        (model, "t", "f", variant, "direct", sample, truth, truth, parsed or "I cannot")
        + (None, status, parsed, "r", PARSER_VERSION, parsed == truth, None, 0)
        + (image, transform, float("nan"))
    )


def _eye() -> list[tuple]:
    """A model that reads the image: right on the original; `a` without an image; one refusal
    on the blank image (s1, v1); one wrong answer on the JPEG (s4, v2)."""
    rows = []
    for variant in ("v1", "v2"):
        for sample, truth in TRUTH.items():
            rows.append(_row("eye", variant, sample, "original", truth))
            rows.append(_row("eye", variant, sample, "no_image", "a"))
            blank = None if (sample, variant) == ("s1", "v1") else truth
            rows.append(_row("eye", variant, sample, "blank", blank))
            jpeg = "a" if (sample, variant) == ("s4", "v2") else truth
            rows.append(_row("eye", variant, sample, "jpeg", jpeg))
    return rows


def _blind(model: str = "blind") -> list[tuple]:
    """A model that ignores the image (a baseline): the same answer under every image variant."""
    said = {"s1": "a", "s2": "b", "s3": "a", "s4": "b"}
    return [
        _row(model, variant, sample, image, said[sample])
        for variant in ("v1", "v2")
        for sample in TRUTH
        for image in ("original", "no_image", "blank", "jpeg")
    ]


def _frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=ANSWER_COLUMNS)


def test_reliance_of_a_model_reading_the_image_is_hand_computed() -> None:
    tables = score_answers(_frame(_eye()), _layout())
    row = one_row(tables.reliance, model="eye")
    # Without the image it says `a` to all 8 (sample, variant) pairs: s3 and s4 change, 4/8.
    assert row.reliance_no_image == pytest.approx(0.5)
    # Blank: only (s1, v1) changes (to a refusal): 1/8.
    assert row.reliance_blank == pytest.approx(1 / 8)
    # F1 with the image is 1; without it class a has tp 4, fp 4 (F1 2/3), class b 0: 1/3.
    assert row.image_f1 == pytest.approx(1.0)
    assert row.no_image_f1 == pytest.approx(1 / 3)
    assert row.no_image_f1_diff == pytest.approx(1 / 3 - 1)
    assert row.n_no_image == 8 and row.n_blank == 8
    assert row.reliance_no_image_lo <= 0.5 <= row.reliance_no_image_hi
    model = one_row(tables.models, model="eye")
    assert model.visual_reliance == pytest.approx(0.5)
    assert model.visual_reliance_blank == pytest.approx(1 / 8)
    assert model.mean_no_image_f1 == pytest.approx(1 / 3)


def test_image_fragility_of_a_transform_is_hand_computed() -> None:
    tables = score_answers(_frame(_eye()), _layout())
    jpeg = one_row(tables.image_variants, model="eye", image_variant="jpeg")
    assert jpeg["transform"] == "jpeg"
    assert (jpeg.n, jpeg.n_images) == (8, 4)
    assert jpeg.image_fragility == pytest.approx(1 / 8)
    # JPEG answers (v1: a a b b, v2: a a b a): class a tp 4 fp 1 (8/9), class b tp 3 fn 1 (6/7).
    assert jpeg.f1_all == pytest.approx((8 / 9 + 6 / 7) / 2)
    assert jpeg.f1_original == pytest.approx(1.0)
    assert jpeg.f1_diff == pytest.approx((8 / 9 + 6 / 7) / 2 - 1)
    original = one_row(tables.image_variants, model="eye", image_variant="original")
    assert (original.n, original.f1_all) == (8, 1.0)
    assert math.isnan(original.get("image_fragility", math.nan))


def test_reliance_of_a_model_ignoring_the_image_is_exactly_zero() -> None:
    tables = score_answers(_frame(_blind()), _layout())
    row = one_row(tables.reliance, model="blind")
    for name in ("reliance_no_image", "reliance_blank"):
        assert (row[name], row[f"{name}_lo"], row[f"{name}_hi"]) == (0.0, 0.0, 0.0)
    assert row.no_image_f1 == row.image_f1 == pytest.approx(0.5)
    assert row.no_image_f1_diff == 0.0
    assert one_row(tables.models, model="blind").visual_reliance == 0.0


def test_reliance_of_a_published_baseline_is_exactly_zero() -> None:
    from pathlib import Path

    from medbench.publish.reading import read_record
    from medbench.score.sidecar import read_answers_csv

    folder = Path("leaderboard/quickstart")
    record = read_record(folder / "baseline-majority.json")
    answers = read_answers_csv((folder / "baseline-majority.answers.csv.gz").read_bytes())
    # A baseline answers without looking: its no-image and blank answers are its original ones.
    copies = [answers.assign(image_variant=v, image_transform="{}") for v in ("no_image", "blank")]
    layout = ScoringLayout.from_json(
        {
            **record.layout.model_dump(mode="json"),
            "image_variants": {"no_image": "no_image", "blank": "blank"},
        }
    )
    tables = score_answers(pd.concat([answers, *copies], ignore_index=True), layout)
    assert len(tables.reliance) > 0
    assert (tables.reliance["reliance_no_image"] == 0).all()
    assert (tables.reliance["reliance_blank_hi"] == 0).all()
    assert (tables.reliance["no_image_f1_diff"] == 0).all()
    assert (tables.models["visual_reliance"] == 0).all()


def test_reliance_pairs_differ_by_the_hand_computed_amounts() -> None:
    tables = score_answers(_frame(_eye() + _blind()), _layout(pairs=[("eye", "blind")]))
    row = one_row(tables.reliance_pairs, model="eye", base="blind")
    assert row.n == 8
    assert row.reliance_diff == pytest.approx(0.5)
    # Without the image: eye 1/3; blind says a, b, a, b to a, a, b, b: 1/2 per class.
    assert row.no_image_f1_diff == pytest.approx(1 / 3 - 1 / 2)
    assert 0.0 <= row.reliance_p <= 1.0 and 0.0 <= row.no_image_f1_p <= 1.0
    assert row.reliance_diff_lo <= 0.5 <= row.reliance_diff_hi


def test_prompt_tables_read_only_the_original_images() -> None:
    with_images = score_answers(_frame(_eye()), _layout())
    plain = _frame([r for r in _eye() if r[-3] == "original"]).drop(
        columns=["image_variant", "image_transform", "image_ssim"]
    )
    without = score_answers(plain, _layout())
    for name in ("scores", "fragility", "pairs"):
        pd.testing.assert_frame_equal(getattr(with_images, name), getattr(without, name))
    shared = list(without.models.columns)
    pd.testing.assert_frame_equal(with_images.models[shared], without.models)
    assert without.image_variants.empty and without.reliance.empty


def test_layout_without_image_variants_writes_no_key() -> None:
    layout = _layout()
    assert layout.to_json()["image_variants"] == TRANSFORMS
    assert ScoringLayout.from_json(layout.to_json()) == layout
    bare = ScoringLayout({}, {}, {}, {})
    assert "image_variants" not in bare.to_json()
    assert ScoringLayout.from_json(bare.to_json()).image_variants == {}


def _publish(folder: Path) -> list[Path]:
    from medbench.publish.writing import write_record
    from tests.leaderboard_data import answer_keys, model_spec, provenance

    answers = _frame(_eye() + _blind())
    layout = _layout(pairs=[("eye", "blind")], n_boot=50)
    tables = score_answers(answers, layout)
    specs = [model_spec("blind"), model_spec("eye", base="blind", medical=True)]
    return [
        write_record(
            folder,
            suite="quickstart",
            spec=spec,
            answers=answers,
            answer_keys=answer_keys(answers, spec.id),
            tables=tables,
            layout=layout,
            provenance=provenance(["t"], n_images=4),
            allow_test_models=True,
        )
        for spec in specs
    ]


def test_record_with_image_variants_carries_and_verifies_its_reliance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medbench.publish.reading import read_record
    from medbench.publish.verify import verify_records

    monkeypatch.chdir(tmp_path)
    _publish(Path("leaderboard"))
    path = Path("leaderboard/quickstart/eye.json")
    record = read_record(path)
    assert record.layout.image_variants == TRANSFORMS
    assert [r["reliance_no_image"] for r in record.reliance or []] == [0.5]
    assert [r["reliance_diff"] for r in record.reliance_pairs or []] == [0.5]
    assert {r["image_variant"] for r in record.image_variants or []} == {
        "original",
        *TRANSFORMS,
    }
    assert verify_records(Path("leaderboard")) == []
    data = json.loads(path.read_text())
    data["reliance"][0]["reliance_no_image"] = 0.25
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    assert verify_records(Path("leaderboard")) == [
        "leaderboard/quickstart/eye.json: reliance[0].reliance_no_image: recorded 0.25, "
        "re-derived 0.5"
    ]


def test_record_without_image_variants_has_no_image_fields(tmp_path: Path) -> None:
    from medbench.score.sidecar import read_answers_csv
    from tests.leaderboard_data import model_spec, publish_synthetic

    path = publish_synthetic(tmp_path, [model_spec("m")], ["pneumonia_cxr"], n_images=6)[0]
    data = json.loads(path.read_text())
    assert not {"image_variants", "reliance", "reliance_pairs"} & set(data)
    assert "image_variants" not in data["layout"]
    # An old sidecar, without the image columns, reads as answers to the original images.
    current = gzip.decompress(
        Path("leaderboard/quickstart/baseline-chance.answers.csv.gz").read_bytes()
    ).decode()
    frame = pd.read_csv(io.StringIO(current), keep_default_na=False)
    frame = frame[frame["image_variant"] == "original"]
    old_text = frame.drop(columns=["image_variant", "image_transform"]).to_csv(index=False)
    rows = read_answers_csv(gzip.compress(old_text.encode()))
    assert set(rows["image_variant"]) == {"original"} and set(rows["image_transform"]) == {""}


def test_published_records_verify() -> None:
    from medbench.publish.verify import verify_records
    from medbench.spec.loading import load_specs

    assert verify_records(Path("leaderboard"), load_specs(Path("specs"))) == []


def test_site_shows_image_variants_and_visual_reliance_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medbench.publish.site import build_site

    monkeypatch.chdir(tmp_path)
    _publish(Path("leaderboard"))
    path = Path("leaderboard/quickstart/eye.json")
    data = json.loads(path.read_text())
    script = "<script>alert(1)</script>"
    data["image_variants"][1]["transform"] = script
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    build_site(Path("leaderboard"), Path("_site"))
    page = Path("_site/models/eye.html").read_text()
    assert script not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for caption in (
        "quickstart: f1_all under each image variant",
        "quickstart: visual reliance, the share of answers that change when the image is",
        "quickstart: visual reliance of each pair, medical model minus its base",
    ):
        assert caption in page
    assert "Visual reliance, no image [95% CI]" in page
    rows = json.loads(Path("_site/data/quickstart~eye~reliance.json").read_text())
    assert [(r["task"], r["reliance_no_image"], r["reliance_blank"]) for r in rows] == [
        ("t", 0.5, 0.125)
    ]
    index = Path("_site/index.html").read_text()
    assert "Visual reliance [95% CI]" in index
    ranking = json.loads(Path("_site/data/quickstart~ranking.json").read_text())
    assert {r["model"]: r["visual_reliance"] for r in ranking} == {"eye": 0.5, "blind": 0.0}
    assert Path("_site/data/quickstart~reliance-pairs.json").is_file()


def test_results_hold_the_image_tables_only_where_measured(tmp_path: Path) -> None:
    from medbench.score.results import IMAGE_FILES, RESULT_FILES, write_results
    from medbench.score.sidecar import answers_csv, read_answers_csv

    answers = _frame(_eye())
    written = write_results(
        tmp_path, "q", answers, score_answers(answers, _layout()), _layout(), []
    )
    # no pair in this layout: no reliance_pairs.csv; no severity level: no severity tables
    assert [p.name for p in written] == [
        *RESULT_FILES,
        "image_variants.csv",
        "reliance.csv",
        "quadrants.csv",
        "quadrant_models.csv",
    ]
    reliance = pd.read_csv(tmp_path / "reliance.csv")
    assert list(reliance["reliance_no_image"]) == [0.5]
    assert json.loads((tmp_path / "layout.json").read_text())["image_variants"] == TRANSFORMS
    plain = answers[answers["image_variant"] == "original"]
    layout = ScoringLayout(**{**vars(_layout()), "image_variants": {}})
    written = write_results(tmp_path, "q", plain, score_answers(plain, layout), layout, [])
    assert [p.name for p in written] == list(RESULT_FILES)
    assert not any((tmp_path / name).exists() for name in IMAGE_FILES)
    # Rows from before the image columns (an older results folder) make the same sidecar.
    old = plain.drop(columns=["image_variant", "image_transform"])
    assert answers_csv(old) == answers_csv(plain)
    assert set(read_answers_csv(answers_csv(old))["image_variant"]) == {"original"}
