"""Tests of the knowledge ladder: its reading, its rows, the t-SNE marks, and the probe stage
end to end on a small project (a tiny LLaVA and a baseline on the pneumonia sample)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, unused-ignore]

from medbench.run.backends.base import BackendContext
from medbench.run.cache import Cache
from medbench.run.loop import run_plan
from medbench.run.plan import make_plan
from medbench.score.answers import collect_answers, make_layout
from medbench.score.probe import (
    LADDER_COLUMNS,
    PREDICTION_COLUMNS,
    PROBE_COLUMNS,
    answer_marks,
    ladder_rows,
    reading,
)
from medbench.score.probe.embeddings import EmbeddingStore, store_path
from medbench.score.scoring import score_answers
from medbench.spec.loading import load_specs
from tests.spec_tree import make_project

NAN = math.nan


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield


@pytest.mark.parametrize(
    ("chance", "answers", "probes", "pixels", "described", "expected"),
    [
        (
            0.33,
            0.34,
            {"vision": 0.91, "projected": 0.85},
            NAN,
            NAN,
            "the encoder separates the classes (vision probe 0.91) but the answers are near "
            "chance (0.34): the knowledge is lost after the encoder",
        ),
        (
            0.5,
            0.2,
            {"vision": 0.6, "projected": 0.9},
            NAN,
            NAN,
            "the encoder separates the classes (projected probe 0.90) but the answers are below "
            "chance (0.20): the knowledge is lost after the encoder",
        ),
        (
            0.25,
            0.6,
            {"vision": 0.9},
            NAN,
            NAN,
            "the encoder separates the classes (vision probe 0.90) better than the answers do "
            "(0.60): some knowledge is lost after the encoder",
        ),
        (
            0.25,
            0.85,
            {"vision": 0.9},
            NAN,
            NAN,
            "the encoder separates the classes (vision probe 0.90) and the answers reach 0.85: "
            "the answers use what the encoder sees",
        ),
        (
            0.5,
            0.52,
            {"vision": 0.55, "projected": 0.55},
            NAN,
            NAN,
            "the answers are near chance (0.52, chance 0.50) and the encoder does not separate "
            "the classes either (vision probe 0.55): the knowledge is absent from what the "
            "model sees",
        ),
        (
            0.5,
            0.75,
            {"vision": 0.6},
            NAN,
            NAN,
            "the answers (0.75) beat chance (0.50) although a linear probe on the encoder does "
            "not (vision probe 0.60): the model reads more than a linear probe finds",
        ),
        (
            0.33,
            0.34,
            {"vision": 0.81},
            0.99,
            0.5,
            "the encoder separates the classes (vision probe 0.81) but the answers are near "
            "chance (0.34): the knowledge is lost after the encoder; describing first recovers "
            "some (0.50, mean over its pipelines and wordings, as the answers' mean); raw pixels "
            "separate the classes better (0.99)",
        ),
        (
            0.5,
            0.4,
            {},
            0.9,
            NAN,
            "the answers are near chance (0.40, chance 0.50); no encoder probe",
        ),
        (
            0.5,
            0.8,
            {},
            NAN,
            NAN,
            "the answers are above chance (0.80, chance 0.50); no encoder probe",
        ),
        (
            0.5,
            NAN,
            {"vision": 0.95},
            NAN,
            NAN,
            "the encoder separates the classes (vision probe 0.95, chance 0.50); no answers scored",
        ),
        (0.5, NAN, {"vision": NAN}, NAN, NAN, "nothing measured"),
    ],
    ids=[
        "lost-after-encoder",
        "below-chance",
        "some-lost",
        "answers-use-encoder",
        "absent-from-encoder",
        "answers-beat-probe",
        "described-and-pixels",
        "no-probe",
        "no-probe-above-chance",
        "no-answers",
        "nothing",
    ],
)
def test_reading_names_where_the_knowledge_is_lost(
    chance: float,
    answers: float,
    probes: dict[str, float],
    pixels: float,
    described: float,
    expected: str,
) -> None:
    assert reading(chance, answers, probes, pixels, described) == expected


@pytest.mark.parametrize(
    ("answers", "likelihood", "expected"),
    [
        (
            0.55,
            0.9,
            "the answers are near chance (0.55, chance 0.50); no encoder probe; the model "
            "prefers the right option but does not say it (likelihood answers 0.90)",
        ),
        (
            0.9,
            0.6,
            "the answers are above chance (0.90, chance 0.50); no encoder probe; its option "
            "likelihoods (0.60) know less than it says",
        ),
        (0.55, 0.6, "the answers are near chance (0.55, chance 0.50); no encoder probe"),
        (
            0.24,
            0.37,
            "the answers are below chance (0.24, chance 0.50); no encoder probe; its option "
            "likelihoods (0.37) beat its answers but not chance",
        ),
        (0.55, NAN, "the answers are near chance (0.55, chance 0.50); no encoder probe"),
    ],
    ids=[
        "prefers-but-does-not-say",
        "says-more-than-it-prefers",
        "within-margin",
        "better-than-answers-still-below-chance",
        "no-likelihood",
    ],
)
def test_reading_places_the_likelihood_rung_after_the_answers(
    answers: float, likelihood: float, expected: str
) -> None:
    assert reading(0.5, answers, {}, likelihood=likelihood) == expected


def score_row(model: str, family: str, variant: str, pipeline: str, f1: float) -> dict[str, Any]:
    return {
        "model": model,
        "task": "t1",
        "family": family,
        "variant": variant,
        "pipeline": pipeline,
        "n": 8,
        "f1_all": f1,
        "chance_f1": 0.5,
    }


def probe_row(model: str, embedding: str, f1: float) -> dict[str, Any]:
    return {
        "model": model,
        "task": "t1",
        "embedding": embedding,
        "n": 8,
        "n_classes": 2,
        "dim": 4,
        "k": 4,
        "chance_f1": 0.5,
        "f1": f1,
        "f1_lo": f1 - 0.1,
        "f1_hi": f1 + 0.05,
        "permutation_f1": 0.5,
    }


def test_ladder_rows_combine_answers_probes_and_pixels() -> None:
    scores = pd.DataFrame(
        [
            score_row("m", "closed", "plain", "direct", 0.4),
            score_row("m", "closed", "terse", "direct", 0.6),
            score_row("m", "yes_no", "plain", "direct", 0.99),
            score_row("m", "closed", "plain", "likelihood/total", 0.8),
            score_row("m", "closed", "terse", "likelihood/total", 0.7),
            score_row("m", "closed", "plain", "described/findings/llm", 0.7),
            score_row("m", "closed", "terse", "described/findings/llm", 0.65),
            score_row("base", "closed", "plain", "direct", 0.5),
        ]
    )
    probes = pd.DataFrame(
        [
            probe_row("m", "vision", 0.9),
            probe_row("m", "projected", 0.8),
            probe_row("*", "pixels", 0.7),
        ],
        columns=PROBE_COLUMNS,
    )
    ladder = ladder_rows(scores, probes, ["closed"])
    assert list(ladder.columns) == LADDER_COLUMNS
    assert list(zip(ladder["model"], ladder["task"], strict=True)) == [("base", "t1"), ("m", "t1")]
    m = ladder.iloc[1].to_dict()
    assert {k: m[k] for k in LADDER_COLUMNS[:11]} == {
        "model": "m",
        "task": "t1",
        "chance_f1": 0.5,
        "direct_f1_mean": pytest.approx(0.5),
        "direct_f1_best": 0.6,
        "direct_best_variant": "closed/terse",
        "likelihood_f1_mean": pytest.approx(0.75),
        "likelihood_f1_best": 0.8,
        "likelihood_best_variant": "closed/plain",
        "described_f1": 0.7,
        "described_best": "described/findings/llm/closed/plain",
    }
    assert (m["probe_vision_f1"], m["probe_vision_f1_lo"], m["probe_projected_f1"]) == (
        0.9,
        pytest.approx(0.8),
        0.8,
    )
    assert m["pixel_f1"] == 0.7
    assert m["reading"].startswith("the encoder separates the classes (vision probe 0.90)")
    assert (
        "; the model prefers the right option but does not say it (likelihood answers 0.75)"
        in (m["reading"])
    )
    base = ladder.iloc[0].to_dict()
    assert math.isnan(base["probe_vision_f1"]) and base["pixel_f1"] == 0.7
    assert (base["described_best"], math.isnan(base["described_f1"])) == ("", True)
    assert (base["likelihood_best_variant"], math.isnan(base["likelihood_f1_mean"])) == ("", True)


def test_ladder_rows_of_a_model_probed_but_not_scored_take_the_probe_chance() -> None:
    probes = pd.DataFrame([probe_row("m", "vision", 0.9)], columns=PROBE_COLUMNS)
    ladder = ladder_rows(pd.DataFrame(), probes, ["closed"])
    row = ladder.iloc[0].to_dict()
    assert (row["model"], row["chance_f1"], math.isnan(row["direct_f1_mean"])) == ("m", 0.5, True)
    assert row["reading"].endswith("no answers scored")


def answer_row(sample: str, variant: str, status: str, parsed: str | None) -> dict[str, Any]:
    truth = "a"
    return {
        "model": "m",
        "task": "t1",
        "family": "closed",
        "variant": variant,
        "pipeline": "direct",
        "sample": sample,
        "truth": truth,
        "status": status,
        "parsed": parsed,
        "correct": parsed == truth,
    }


def test_answer_marks_put_refusals_and_errors_before_flips() -> None:
    rows = [
        answer_row("right", "plain", "answer", "a"),
        answer_row("right", "terse", "answer", "a"),
        answer_row("flipped", "plain", "answer", "a"),
        answer_row("flipped", "terse", "answer", "b"),
        answer_row("wrong", "plain", "answer", "b"),
        answer_row("wrong", "terse", "answer", "a"),
        answer_row("unparseable", "plain", "unparseable", None),
        answer_row("refused", "plain", "refusal", None),
        answer_row("failed", "plain", "error", None),
        answer_row("no-reference", "terse", "answer", "a"),
    ]
    marks = answer_marks(pd.DataFrame(rows), "m", "t1", "closed", "plain")
    assert marks == {
        "flipped": "flipped",
        "refused": "refused",
        "right": "right",
        "unparseable": "wrong",
        "wrong": "wrong",
    }
    assert answer_marks(pd.DataFrame(rows), "m", "t1", None, "plain") == {}


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, tiny_models_dir: Path) -> dict[str, Any]:
    """A tiny LLaVA and the chance baseline on 8 pneumonia images: run, score, probe twice
    (the second time with extraction made impossible)."""
    tmp = tmp_path_factory.mktemp("ladder")
    project = make_project(tmp, models=("tiny-llava", "baseline-chance"), limit_per_class=4)
    specs = load_specs(project / "specs")
    context = BackendContext(device="cpu")
    outputs = []
    with Cache(tmp / "c.sqlite") as cache, threadpool_limits(limits=1):
        plan = make_plan(specs, "t", models_dir=tmp / "models", hasher=cache.hash_file)
        run_plan(plan, specs, cache, progress=False)
        answers = collect_answers(specs, plan, cache)
        scores = score_answers(answers, make_layout(specs, plan)).scores
        from medbench.score.probe import run_probe_stage

        for attempt in range(2):
            out = tmp / f"results-{attempt}"
            with pytest.MonkeyPatch.context() as patch:
                if attempt:

                    def refuse(*args: object, **kwargs: object) -> None:
                        raise AssertionError("the rerun extracted embeddings")

                    patch.setattr("medbench.run.backends.hf.embed.extract", refuse)
                ladder = run_probe_stage(specs, plan, cache.path, answers, scores, out, context)
            outputs.append((out, ladder))
        with EmbeddingStore(store_path(cache.path)) as store:
            stored = store.count()
    return {"outputs": outputs, "stored": stored, "n": len(plan.samples["pneumonia_cxr"])}


def test_run_probe_stage_writes_the_ladder_probes_and_maps(stage: dict[str, Any]) -> None:
    out, ladder = stage["outputs"][0]
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        "ladder.csv",
        "probe.csv",
        "probe_predictions.csv",
        "tsne/tiny-llava/pneumonia_cxr.svg",
    ]
    predicted = pd.read_csv(out / "probe_predictions.csv", keep_default_na=False)
    assert list(predicted.columns) == PREDICTION_COLUMNS
    # one out-of-fold prediction per image and embedding of the embeddable model only
    assert sorted(set(zip(predicted["model"], predicted["embedding"], strict=True))) == [
        ("tiny-llava", "projected"),
        ("tiny-llava", "vision"),
    ]
    assert len(predicted) == 2 * stage["n"]
    assert list(ladder.columns) == LADDER_COLUMNS
    assert list(zip(ladder["model"], ladder["task"], strict=True)) == [
        ("baseline-chance", "pneumonia_cxr"),
        ("tiny-llava", "pneumonia_cxr"),
    ]
    assert pd.read_csv(out / "ladder.csv", keep_default_na=False)["model"].tolist() == [
        "baseline-chance",
        "tiny-llava",
    ]
    probes = pd.read_csv(out / "probe.csv")
    assert list(probes.columns) == PROBE_COLUMNS
    assert list(zip(probes["model"], probes["embedding"], strict=True)) == [
        ("*", "pixels"),
        ("tiny-llava", "projected"),
        ("tiny-llava", "vision"),
    ]
    assert set(probes["n"]) == {stage["n"]} and set(probes["k"]) == {4}
    assert stage["stored"] == 2 * stage["n"]
    tiny = ladder.iloc[1]
    assert not math.isnan(tiny["probe_vision_f1"]) and not math.isnan(tiny["pixel_f1"])
    assert tiny["direct_best_variant"].startswith("closed_diagnosis/")
    assert math.isnan(ladder.iloc[0]["probe_vision_f1"])
    svg = (out / "tsne/tiny-llava/pneumonia_cxr.svg").read_text()
    assert "<title>tiny-llava on pneumonia_cxr: t-SNE of vision embeddings" in svg


def test_run_probe_stage_rerun_is_byte_identical_and_extracts_nothing(
    stage: dict[str, Any],
) -> None:
    (first, _), (second, _) = stage["outputs"]
    names = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_ladder_rows_put_the_no_image_rung_below_the_answers() -> None:
    scores = pd.DataFrame(
        [
            score_row("eye", "closed", "plain", "direct", 0.9),
            score_row("blind", "closed", "plain", "direct", 0.8),
        ]
    )
    reliance = pd.DataFrame(
        [
            {"model": "eye", "task": "t1", "family": "closed", "pipeline": "direct"}
            | {"no_image_f1": 0.3},
            {"model": "eye", "task": "t1", "family": "other", "pipeline": "direct"}
            | {"no_image_f1": 0.1},
            {"model": "blind", "task": "t1", "family": "closed", "pipeline": "direct"}
            | {"no_image_f1": 0.8},
        ]
    )
    probes = pd.DataFrame(columns=PROBE_COLUMNS)
    ladder = ladder_rows(scores, probes, ["closed"], reliance)
    expected = ["model", "task", "chance_f1", "no_image_f1", *LADDER_COLUMNS[3:]]
    assert list(ladder.columns) == expected
    by_model = {r["model"]: r for r in ladder.to_dict("records")}
    # Only the label family `closed` counts: eye 0.3 (not the mean with 0.1), blind 0.8.
    assert (by_model["eye"]["no_image_f1"], by_model["blind"]["no_image_f1"]) == (0.3, 0.8)
    assert "without the image" not in by_model["eye"]["reading"]
    assert by_model["blind"]["reading"].endswith(
        "; without the image it scores 0.80: the answers barely use the image"
    )
    assert list(ladder_rows(scores, probes, ["closed"]).columns) == LADDER_COLUMNS


def test_ladder_compares_the_described_mean_with_the_direct_mean() -> None:
    # the best of 14 describe-then-diagnose pipelines beats the direct mean by selection alone
    described = [0.8] + [0.5] * 13
    scores = pd.DataFrame(
        [score_row("m", "closed", "plain", "direct", 0.5)]
        + [
            score_row("m", "closed", "plain", f"described/f/llm{i:02d}", f1)
            for i, f1 in enumerate(described)
        ]
    )
    ladder = ladder_rows(scores, pd.DataFrame(columns=PROBE_COLUMNS), ["closed"]).iloc[0]
    assert ladder["described_f1"] == 0.8  # the best, beside the direct best
    assert ladder["described_f1_mean"] == pytest.approx(sum(described) / len(described))
    assert "describing first recovers" not in ladder["reading"]


def test_ladder_rows_reading_is_the_one_its_written_columns_give() -> None:
    # 0.6 + one ulp is above chance + 0.1; ladder.csv writes it as 0.6, which is not
    above = math.nextafter(0.6, 1.0)
    scores = pd.DataFrame([score_row("m", "closed", "plain", "direct", above)])
    ladder = ladder_rows(scores, pd.DataFrame(columns=PROBE_COLUMNS), ["closed"])
    assert ladder.iloc[0]["reading"] == (
        "the answers are near chance (0.60, chance 0.50); no encoder probe"
    )
