"""The terminal report's lines: wrapped at word boundaries on a terminal, whole in a file."""

from __future__ import annotations

import io

from rich.console import Console

from medbench.score.report import HANGING, print_line

LADDER = (
    "  tiny-gemma3-general / pneumonia_cxr: chance 0.50, no image 0.33, answers 0.59, "
    "likelihood 0.89, described 0.16, probe 1.00, pixels 0.83: the encoder separates the "
    "classes (vision probe 1.00) but the answers are near chance (0.59): the knowledge is lost "
    "after the encoder; the model prefers the right option but does not say it (likelihood "
    "answers 0.89)"
)
LIKELIHOOD = (
    "  llava-med-v1.5-mistral-7b / brain_tumor_mri: likelihood f1_all 0.41; closed_diagnosis "
    "ECE 0.28, finding_present ECE 0.16"
)


def printed(lines: list[str], terminal: bool) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=terminal, color_system=None)
    for line in lines:
        print_line(console, line)
    return out.getvalue().splitlines()


def test_print_line_on_a_terminal_wraps_words_whole_under_a_hanging_indent() -> None:
    shown = printed([LADDER, LIKELIHOOD], terminal=True)
    assert all(len(line) <= 80 for line in shown), shown
    starts = [i for i, line in enumerate(shown) if not line.startswith(" " * (2 + HANGING))]
    assert starts == [0, len(shown) - 2]  # each line's continuation sits deeper than its start
    assert shown[-1] == " " * (2 + HANGING) + "closed_diagnosis ECE 0.28, finding_present ECE 0.16"
    first = shown[:-2]
    assert " ".join(part.strip() for part in first).split() == LADDER.split()  # no word cut


def test_print_line_in_a_file_keeps_each_line_whole() -> None:
    assert printed([LADDER, LIKELIHOOD], terminal=False) == [LADDER, LIKELIHOOD]
