"""`verify` re-derives or refuses the ladder's rungs beyond the answers: the pixel probe, the
encoder probes and the reading (forged from the committed quickstart records)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import f1_score

from medbench.publish.verify import verify_records
from medbench.score import read_answers_csv
from medbench.score.probe import reading
from medbench.spec.loading import SpecSet
from tests.leaderboard_data import model_spec, publish_synthetic
from tests.publish.test_rederive import RECORD, project

__all__ = ["project"]


def edit_ladder(change: Callable[[dict[str, Any]], None], record: Path = RECORD) -> None:
    """Change the first ladder row and write the reading its columns give, as a careful forger
    would."""
    data = json.loads(record.read_text())
    row = data["ladder"][0]
    change(row)
    probes = {
        k: row[f"probe_{k}_f1"] for k in ("vision", "projected") if row[f"probe_{k}_f1"] is not None
    }
    row["reading"] = reading(
        row["chance_f1"],
        row["direct_f1_mean"],
        probes,
        row["pixel_f1"],
        float("nan"),
        float("nan"),
        row["no_image_f1"],
    )
    record.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def test_verify_records_probe_of_a_model_without_embeddings_is_a_problem(
    project: SpecSet,
) -> None:
    edit_ladder(lambda row: row.update(probe_vision_f1=0.99))
    assert verify_records(Path("leaderboard")) == [
        f"{RECORD}: ladder[0].probe_vision_f1: recorded 0.99, but medbench extracts no image "
        "embeddings from a baseline model: no such probe exists. Publish the ladder as "
        "`medbench run` wrote it"
    ]


def test_verify_records_reading_that_its_columns_do_not_give_is_a_problem(
    project: SpecSet,
) -> None:
    data = json.loads(RECORD.read_text())
    data["ladder"][0]["reading"] = "the encoder separates the classes (vision probe 0.99)"
    RECORD.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    assert verify_records(Path("leaderboard")) == [
        f'{RECORD}: ladder[0].reading: recorded "the encoder separates the classes (vision probe '
        "0.99)\", its columns read 'the answers are near chance (0.24, chance 0.25); no encoder "
        "probe'"
    ]


def test_verify_records_pixel_rung_is_fitted_again_from_the_tasks_images(
    project: SpecSet,
) -> None:
    recorded = json.loads(RECORD.read_text())["ladder"][0]["pixel_f1"]
    edit_ladder(lambda row: row.update(pixel_f1=0.99))
    assert verify_records(Path("leaderboard")) == []  # without specs: no data to fit on
    problems = verify_records(Path("leaderboard"), project)
    assert problems == [
        f"{RECORD}: ladder[0].pixel_f1: recorded 0.99, the task's 32 images give {recorded!r}"
    ]


def test_verify_records_probe_of_an_embeddable_model_is_re_scored_from_its_predictions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    board = Path("leaderboard")
    real = model_spec("real").model_copy(
        update={"backend": "hf", "baseline": None, "repo": "org/real"}
    )
    [path] = publish_synthetic(board, [real], ["pneumonia_cxr"], n_images=12, n_boot=10)
    answers = read_answers_csv(path.with_name("real.answers.csv.gz").read_bytes())
    labels = answers.drop_duplicates("sample").sort_values("sample")
    # three folds; the probe misses the first image of each fold
    rows = [
        {"task": "pneumonia_cxr", "embedding": "vision", "sample": sample, "fold": i % 3}
        | {"predicted": label if i >= 3 else "wrong"}
        for i, (sample, label) in enumerate(zip(labels["sample"], labels["label"], strict=True))
    ]
    truth = np.asarray([r["predicted"] for r in rows], dtype=object)
    truth[:3] = labels["label"].iloc[:3]
    folds = [
        f1_score(
            [t for t, r in zip(truth, rows, strict=True) if r["fold"] == f],
            [r["predicted"] for r in rows if r["fold"] == f],
            labels=sorted(set(labels["label"])),
            average="macro",
            zero_division=0,
        )
        for f in range(3)
    ]
    f1 = float(np.mean(folds))
    data = json.loads(path.read_text())
    data["ladder"] = [{"task": "pneumonia_cxr", "probe_vision_f1": f1}]
    data["probe_predictions"] = rows
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    assert verify_records(board) == []

    data["ladder"][0]["probe_vision_f1"] = 0.99
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    assert verify_records(board) == [
        f"{path}: ladder[0].probe_vision_f1: recorded 0.99, the probe's predictions score {f1:.10g}"
    ]
    del data["probe_predictions"]
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    assert verify_records(board) == [
        f"{path}: ladder[0].probe_vision_f1: cannot be re-derived: the record holds no probe "
        "predictions for it; republish the model"
    ]
