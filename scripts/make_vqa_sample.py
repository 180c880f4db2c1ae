"""Build the closed-VQA sample tables in data/sample/vqa/ from the bundled sample images.

The shipped VQA specs (VQA-RAD, PathVQA, PMC-VQA) read the Hub datasets in their `full`
source; their `sample` source is a small synthetic table laid out like each dataset (the
same column names and answer style), made here from the bundled sample images (see
data/sample/README.md for their sources and licences). Each question's answer follows from
the image's class folder, so a model that reads the image can answer it. Deterministic: the
same images give byte-identical files.

Run: .venv/bin/python scripts/make_vqa_sample.py
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
OUT = SAMPLE / "vqa"
PER_CLASS = 6
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def images(task: str, label: str) -> list[Path]:
    return sorted((SAMPLE / task / label).glob("*.jpg"))[:PER_CLASS]


def image_cell(path: Path) -> dict[str, object]:
    return {"bytes": path.read_bytes(), "path": path.name}


def write(rows: list[dict[str, object]], schema: pa.Schema, name: str) -> None:
    table = pa.Table.from_pylist(rows, schema=schema)
    OUT.mkdir(exist_ok=True)
    pq.write_table(table, OUT / name, compression="zstd", row_group_size=64)
    print(f"wrote {OUT / name}: {len(rows)} rows")


def vqa_rad() -> None:
    """Radiology yes/no questions (and a few open ones, which the task skips), as VQA-RAD."""
    rows: list[dict[str, object]] = []
    for label in ("normal", "pneumonia"):
        for path in images("pneumonia_cxr", label):
            sick = label == "pneumonia"
            rows.append(
                {
                    "image": image_cell(path),
                    "question": "Is there evidence of pneumonia?",
                    "answer": "yes" if sick else "no",
                }
            )
            rows.append(
                {
                    "image": image_cell(path),
                    "question": "Are the lungs clear?",
                    "answer": "no" if sick else "yes",
                }
            )
    for label in ("glioma", "notumor"):
        for path in images("brain_tumor_mri", label)[:3]:
            rows.append(
                {
                    "image": image_cell(path),
                    "question": "Is there a mass in the brain?",
                    "answer": "no" if label == "notumor" else "yes",
                }
            )
            rows.append(
                {
                    "image": image_cell(path),
                    "question": "What imaging modality is this?",
                    "answer": "MRI",
                }
            )  # open-ended: not a yes/no answer, skipped
    schema = pa.schema([("image", IMAGE), ("question", pa.string()), ("answer", pa.string())])
    write(rows, schema, "vqa_rad_test.parquet")


def path_vqa() -> None:
    """Pathology yes/no questions, as PathVQA."""
    rows: list[dict[str, object]] = []
    for label in ("lung_adenocarcinoma", "lung_benign", "lung_squamous_cell_carcinoma"):
        for path in images("histopathology", label):
            benign = label == "lung_benign"
            rows.append(
                {
                    "image": image_cell(path),
                    "question": "Is this tissue malignant?",
                    "answer": "no" if benign else "yes",
                }
            )
            rows.append(
                {
                    "image": image_cell(path),
                    "question": "Does this section show normal lung tissue?",
                    "answer": "yes" if benign else "no",
                }
            )
    schema = pa.schema([("image", IMAGE), ("question", pa.string()), ("answer", pa.string())])
    write(rows, schema, "pathvqa_test.parquet")


def pmc_vqa() -> None:
    """Four-option questions with lettered choices in separate columns, as PMC-VQA."""
    names = {
        "glioma": "Glioma",
        "meningioma": "Meningioma",
        "notumor": "No tumor",
        "pituitary": "Pituitary adenoma",
    }
    rng = random.Random("medbench-pmc-vqa-sample")
    rows: list[dict[str, object]] = []
    for label, name in names.items():
        for path in images("brain_tumor_mri", label):
            choices = list(names.values())
            rng.shuffle(choices)
            letter = "ABCD"[choices.index(name)]
            row: dict[str, object] = {
                "image": image_cell(path),
                "question": "Which diagnosis best fits this brain MRI?",
                "answer": name,
                "answer label": letter,
            }
            row.update(
                {f"choice {c.lower()}": f"{c}:{o}" for c, o in zip("ABCD", choices, strict=True)}
            )
            rows.append(row)
    schema = pa.schema(
        [
            ("image", IMAGE),
            ("question", pa.string()),
            ("answer", pa.string()),
            ("answer label", pa.string()),
            *((f"choice {c}", pa.string()) for c in "abcd"),
        ]
    )
    write(rows, schema, "pmc_vqa_test.parquet")


if __name__ == "__main__":
    vqa_rad()
    path_vqa()
    pmc_vqa()
