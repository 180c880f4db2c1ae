"""`verify` catches answers no model gave: forged copies of the committed quickstart records."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from medbench.publish.forgery import one_request_one_answer
from medbench.publish.reading import read_record
from medbench.publish.verify import verify_records
from medbench.score.sidecar import read_answers_csv
from medbench.spec.loading import SpecSet
from tests.publish.test_rederive import RECORD, SIDECAR, forge, project

__all__ = ["project"]
REFUSE = Path("leaderboard/quickstart/baseline-always-refuse.json")
NAMES = {"notumor": "no tumor", "pituitary": "pituitary tumor"}
"""Label ids of the sample tasks whose names differ from them."""


def name_of(truth: str) -> str:
    return NAMES.get(truth, truth)


def copy_the_truth(answers: pd.DataFrame) -> None:
    """Every direct answer becomes its image's true label, as a forger writes it."""
    direct = answers["pipeline"] == "direct"
    answers.loc[direct, "text"] = answers.loc[direct, "truth"].map(name_of)
    answers.loc[direct, ["status", "error"]] = ["answer", None]
    answers.loc[direct, "parsed"] = answers.loc[direct, "truth"]
    answers.loc[direct, "correct"] = True


def test_verify_records_baseline_is_re_derived_whole_from_its_backend(project: SpecSet) -> None:
    before = read_answers_csv(Path(SIDECAR).read_bytes())
    forge(copy_the_truth)
    after = read_answers_csv(Path(SIDECAR).read_bytes())
    changed = int((before["text"].fillna("") != after["text"].fillna("")).sum())
    notes: list[str] = []
    problems = verify_records(Path("leaderboard"), project, notes)
    pattern = (
        rf"{RECORD}: baseline: {changed} of 2464 re-asked answers differ from the sidecar "
        r"\(first: [^)]*\); these answers did not come from this model as the specs ask it"
    )
    assert [p for p in problems if re.fullmatch(pattern, p)], problems
    other = RECORD.with_name("baseline-stable-random.json")
    assert f"{other}: baseline: 2464 answers re-asked, all as recorded" in notes


def test_verify_records_refusing_baseline_that_answers_is_a_problem_without_specs(
    project: SpecSet,
) -> None:
    def answer_once(answers: pd.DataFrame) -> None:
        first = answers.index[answers["pipeline"] == "direct"][0]
        truth = answers.loc[first, "truth"]
        answers.loc[first, ["text", "status", "parsed", "correct"]] = [truth, "answer", truth, True]

    forge(answer_once, REFUSE)
    first = read_answers_csv(REFUSE.with_name("baseline-always-refuse.answers.csv.gz").read_bytes())
    row = first[first["pipeline"] == "direct"].iloc[0]
    assert verify_records(Path("leaderboard")) == [
        "leaderboard/quickstart/baseline-always-refuse.answers.csv.gz: text: 1 of 2288 answers of "
        "a baseline that always refuses are not its refusal (first: "
        f"{row['task']}/{row['family']}/{row['variant']}/{row['sample']}: {row['text']!r}); a "
        "baseline answers deterministically"
    ]


def test_one_request_one_answer_texts_that_differ_without_an_image_are_a_problem(
    project: SpecSet,
) -> None:
    # A baseline's answers claimed for a model that reads images: a baseline keeps each
    # image's own request under `no-image`; a model asked without the image has one request.
    record = read_record(RECORD)
    claimed = record.model_copy(update={"model": {**record.model, "backend": "hf"}})
    answers = read_answers_csv(Path(SIDECAR).read_bytes())
    found = one_request_one_answer("s", claimed, answers, set())
    assert found[0] == (
        "s: text: 32 images of brain_tumor_mri asked with closed_diagnosis/plain under image "
        "variant 'no-image' got 4 different answers. Without an image every image is one "
        "request, and a run stores one answer per request: these answers were not all given by "
        "the model"
    )
    copy_the_truth(answers)
    assert one_request_one_answer("s", claimed, answers, set())[0] == (
        "s: text: 32 images of brain_tumor_mri asked with closed_diagnosis/plain under image "
        "variant 'no-image' got 4 different answers; each is its image's true label. Without an "
        "image every image is one request, and a run stores one answer per request: these "
        "answers were not all given by the model"
    )
    refusing = read_record(REFUSE)
    constant = read_answers_csv(REFUSE.with_name(f"{REFUSE.stem}.answers.csv.gz").read_bytes())
    hf = refusing.model_copy(update={"model": {**refusing.model, "backend": "hf"}})
    assert one_request_one_answer("s", hf, constant, set()) == []
    assert one_request_one_answer("s", claimed, answers, {"brain_tumor_mri"})[0].startswith(
        "s: text: 24 images of histopathology"
    )


def test_verify_records_truth_in_its_own_words_for_every_image_is_a_note(
    project: SpecSet,
) -> None:
    forge(copy_the_truth)
    notes: list[str] = []
    verify_records(Path("leaderboard"), project, notes)
    assert (
        f"{SIDECAR}: task brain_tumor_mri: every answer (448, under every wording) is its "
        "image's true label, word for word: a perfect model answers so, and so do labels copied "
        "into the texts; verify cannot tell them apart"
    ) in notes
    assert not [n for n in notes if "word for word" in n and "baseline-stable-random" in n]


def describe(answers: pd.DataFrame, share: float) -> None:
    """The closed question's answers on the first `share` of each task's images become one long
    text per image, pasted under every wording."""
    rows = (answers["family"] == "closed_diagnosis") & (answers["image_variant"] == "original")
    for task in sorted(set(answers["task"])):
        samples = sorted(set(answers.loc[rows & (answers["task"] == task), "sample"]))
        for i, sample in enumerate(samples[: round(share * len(samples))]):
            mine = rows & (answers["sample"] == sample)
            truth = answers.loc[mine, "truth"].iloc[0]
            answers.loc[mine, "text"] = (
                f"On review of image {i}, the appearance of the tissue and its margins taken "
                f"together, the answer is {name_of(truth)}."
            )


def test_verify_records_the_same_long_text_under_every_wording_is_a_problem(
    project: SpecSet,
) -> None:
    forge(lambda answers: describe(answers, 1.0))
    problems = verify_records(Path("leaderboard"), project)
    assert (
        f"{SIDECAR}: text: 32 of 32 images of brain_tumor_mri got the same long answer (at least "
        "60 characters, given to no other image) under each of 7 different prompts of "
        "closed_diagnosis; a changed prompt changes a generated text: these texts were not "
        "generated from their prompts"
    ) in problems


def test_verify_records_the_same_long_text_for_some_images_is_a_note(project: SpecSet) -> None:
    forge(lambda answers: describe(answers, 0.25))
    notes: list[str] = []
    problems = verify_records(Path("leaderboard"), project, notes)
    assert not [p for p in problems if "same long answer" in p]
    assert (
        f"{SIDECAR}: text: 8 of 32 images of brain_tumor_mri got the same long answer (at least "
        "60 characters, given to no other image) under each of 7 different prompts of "
        "closed_diagnosis; unusual for a model: read them"
    ) in notes


def test_verify_records_run_must_name_the_records_suite_and_answers(project: SpecSet) -> None:
    data = json.loads(RECORD.read_text())
    data["run"].update(suite="paper", n_answers=2000)
    RECORD.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    hint = "a record names the run that made its answers: republish it from that run"
    assert verify_records(Path("leaderboard")) == [
        f'{RECORD}: run.suite: recorded "paper", the record\'s suite "quickstart"; {hint}',
        f"{RECORD}: run.n_answers: recorded 2000, the sidecar holds 2464; {hint}",
    ]
