"""Score: parse answers and turn them into metrics with intervals, fragility, reliance,
likelihood read-outs, the probe and the knowledge ladder, the terminal report and the
results folder. Imports only `spec`, `data` and `run`; later stages use the names below.
"""

from __future__ import annotations

from medbench.score.answers import (
    IMAGE_PROCESSOR_COLUMN,
    ScoringLayout,
    collect_answers,
    parse_job_answer,
)
from medbench.score.ranks import Rank, order_key, rank_rows
from medbench.score.reliance import original_only
from medbench.score.report import print_line, score_and_report
from medbench.score.scoring import ScoreTables, finite, score_answers
from medbench.score.sidecar import MAX_SIDECAR_BYTES, answers_csv, decompress, read_answers_csv

__all__ = [
    "IMAGE_PROCESSOR_COLUMN",
    "MAX_SIDECAR_BYTES",
    "Rank",
    "ScoreTables",
    "ScoringLayout",
    "answers_csv",
    "collect_answers",
    "decompress",
    "finite",
    "order_key",
    "original_only",
    "parse_job_answer",
    "rank_rows",
    "read_answers_csv",
    "print_line",
    "score_and_report",
    "score_answers",
]
