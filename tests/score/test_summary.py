"""Tests of medbench.score.summary: the terminal summary, whole, at 80 columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medbench.score.summary import WIDTH, summary_lines


def _model(model: str, pipeline: str, headline: float, lo: float, hi: float, fi: float, f1: float):
    return {
        "model": model,
        "pipeline": pipeline,
        "all_variants_kappa": headline,
        "all_variants_kappa_lo": lo,
        "all_variants_kappa_hi": hi,
        "fragility_index": fi,
        "mean_f1_all": f1,
    }


def _scores(
    model: str, pipeline: str, refusal: float, unparseable: float
) -> list[dict[str, object]]:
    return [
        {"model": model, "pipeline": pipeline, "refusal_rate": refusal, "unparseable_rate": u}
        for u in (unparseable - 0.01, unparseable + 0.01)
    ]


def test_summary_lines_hide_fragility_and_rank_last_a_model_without_skill() -> None:
    models = pd.DataFrame(
        [
            _model("baseline-stable-random", "direct", 0.01, -0.05, 0.07, 0.0, 0.5),
            _model("tiny-gemma3-general", "direct", 0.02, 0.01, 0.05, 0.42, 0.55),
        ]
    )
    lines = summary_lines("q", models, pd.DataFrame(), set())
    assert lines[4:] == [
        "1–2 tiny-gemma3-general         0.02 [0.01-0.05]   0.42    0.55       -        -",
        "1–2 baseline-stable-random      0.01 [-0.05-0.07]      -    0.50       -        -",
        "# a–b: a rank range, where the models' 95% kappa intervals overlap",
    ]


def test_summary_lines_rank_by_headline_with_full_ids_within_80_columns() -> None:
    models = pd.DataFrame(
        [
            _model("baseline-always-positive", "direct", 0.18, 0.16, 0.20, 0.0, 0.18),
            _model("tiny-gemma3-general", "direct", 0.31, 0.25, 0.37, 0.42, 0.55),
            _model("tiny-gemma3-med", "direct", 0.83, 0.78, 0.88, 0.05, 0.86),
            _model("tiny-gemma3-med", "described/radiologist/tiny-text", 0.2, 0.1, 0.3, 0.3, 0.3),
            _model("a-model-with-a-really-long-identifier-v2", "direct", 0.5, 0.4, 0.6, 0.2, 0.6),
        ]
    )
    scores = pd.DataFrame(
        _scores("baseline-always-positive", "direct", 0.0, 0.01)
        + _scores("tiny-gemma3-general", "direct", 0.05, 0.21)
        + _scores("tiny-gemma3-med", "direct", 0.0, 0.02)
        + _scores("tiny-gemma3-med", "described/radiologist/tiny-text", 0.0, 0.5)
        + _scores("a-model-with-a-really-long-identifier-v2", "direct", 0.1, 0.1)
    )
    tests = {"tiny-gemma3-general", "tiny-gemma3-med", "baseline-always-positive"}
    lines = summary_lines("quickstart", models, scores, tests)
    assert lines == [
        "suite quickstart: ranked by all-variants kappa (chance-corrected; an image",
        "counts only if every variant answers it right), 95% CI; fragility =",
        "disagreement, shown only where the kappa interval lies above 0",
        "  # model                         all-var. kappa fragil mean F1 refused unparsed",
        "  1 tiny-gemma3-med *           0.83 [0.78-0.88]   0.05    0.86    0.00     0.02",
        "      + described/radiologist/tiny-text",
        "                                0.20 [0.10-0.30]   0.30    0.30    0.00     0.50",
        "  2 a-model-with-a-really-long-identifier-v2",
        "                                0.50 [0.40-0.60]   0.20    0.60    0.10     0.10",
        "  3 tiny-gemma3-general *       0.31 [0.25-0.37]   0.42    0.55    0.05     0.21",
        "  4 baseline-always-positive *  0.18 [0.16-0.20]   0.00    0.18    0.00     0.01",
        "* test model: random or demonstration weights, not a real result",
        "+ a described pipeline: the model describes, a text model diagnoses",
    ]
    assert max(map(len, lines)) <= WIDTH


def test_summary_lines_show_dashes_for_missing_numbers() -> None:
    models = pd.DataFrame([{"model": "m", "pipeline": "direct", "fragility_index": 0.1}])
    lines = summary_lines("s", models, pd.DataFrame(), set())
    assert lines[4:] == [
        "  1 m                                          -   0.10       -       -        -"
    ]


def test_summary_lines_print_one_visual_reliance_line_per_measured_model() -> None:
    eye = _model("eye", "direct", 0.8, 0.7, 0.9, 0.1, 0.8)
    eye |= {"visual_reliance": 0.5, "visual_reliance_lo": 0.25, "visual_reliance_hi": 0.75}
    eye |= {"visual_reliance_blank": 0.125, "visual_reliance_blank_lo": 0.0}
    eye |= {"visual_reliance_blank_hi": 0.375, "mean_no_image_f1": 1 / 3}
    long_id = "a-model-with-a-really-long-identifier-that-does-not-fit-v2"
    blind = _model(long_id, "direct", 0.5, 0.4, 0.6, 0.0, 0.5)
    blind |= {"visual_reliance": 0.0, "visual_reliance_lo": 0.0, "visual_reliance_hi": 0.0}
    unmeasured = _model("text-only", "direct", 0.2, 0.1, 0.3, 0.0, 0.2)
    models = pd.DataFrame([eye, blind, unmeasured])
    lines = summary_lines("q", models, pd.DataFrame(), set())
    assert lines[-4:] == [
        "visual reliance: answers changed with no image / a blank image; F1 no image",
        f"  {long_id}:",
        "    no image 0.00 [0.00-0.00]",
        "  eye: no image 0.50 [0.25-0.75], blank 0.12 [0.00-0.38], F1 0.33",
    ]
    assert all(len(line) <= WIDTH for line in lines)


def test_summary_lines_leave_out_visual_reliance_when_no_model_was_measured() -> None:
    models = pd.DataFrame([_model("m", "direct", 0.5, 0.4, 0.6, 0.1, 0.5)])
    assert not any("reliance" in line for line in summary_lines("q", models, pd.DataFrame(), set()))


def test_ladder_lines_name_every_measured_rung_in_ladder_order() -> None:
    from medbench.score.summary import ladder_lines

    nan = float("nan")
    ladder = pd.DataFrame(
        [
            {
                "model": "m",
                "task": "t",
                "chance_f1": 0.5,
                "no_image_f1": 0.31,
                "direct_f1_mean": 0.4,
                "likelihood_f1_mean": 0.8,
                "described_f1": nan,
                "probe_vision_f1": 0.9,
                "probe_projected_f1": 0.95,
                "pixel_f1": 0.7,
                "reading": "the model prefers the right option but does not say it",
            },
            {
                "model": "baseline",
                "task": "t",
                "chance_f1": 0.5,
                "no_image_f1": nan,
                "direct_f1_mean": 0.33,
                "likelihood_f1_mean": nan,
                "described_f1": nan,
                "probe_vision_f1": nan,
                "probe_projected_f1": nan,
                "pixel_f1": 0.7,
                "reading": "not probed",
            },
        ]
    )
    assert ladder_lines(ladder) == [
        "  m / t: chance 0.50, no image 0.31, answers 0.40, likelihood 0.80, probe 0.95, "
        "pixels 0.70: the model prefers the right option but does not say it"
    ]
    assert ladder_lines(ladder.iloc[:0]) == []


def test_ladder_lines_flag_truncated_descriptions_on_the_described_rung(tmp_path: Path) -> None:
    from medbench.run.cache import Cache
    from medbench.run.jobs import Job
    from medbench.score.summary import ladder_lines
    from medbench.score.truncation import truncated_descriptions

    jobs = [
        Job(f"k{i}", "m", "t", "describe_findings", "plain", f"s{i}", "normal", "describe")
        for i in range(3)
    ]
    with Cache(tmp_path / "c.sqlite") as cache:
        rows = [
            ("k0", "m", "t", "f", "v", "s0", "{}", "A mass in the", None, 1.0, 1, None, "length")
        ]
        rows += [("k1", "m", "t", "f", "v", "s1", "{}", "Clear lungs.", None, 1.0, 1, None, "stop")]
        cache.put_many(rows)
        truncated = truncated_descriptions(jobs, cache)
    assert truncated == {("m", "t"): (1, 2)}
    ladder = pd.DataFrame(
        [
            {
                "model": "m",
                "task": "t",
                "chance_f1": 0.5,
                "direct_f1_mean": 0.4,
                "described_f1_mean": 0.6,
                "probe_vision_f1": 0.9,
                "reading": "r",
            }
        ]
    )
    assert ladder_lines(ladder, truncated) == [
        "  m / t: chance 0.50, answers 0.40, described 0.60 (1 of 2 descriptions truncated), "
        "probe 0.90: r"
    ]
