"""Progress on stderr: fitted to 80 columns with its numbers whole, one line per step in a log."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from medbench.run.progress import FittedProgress, step
from medbench.spec.loading import load_specs

SPECS = Path(__file__).resolve().parents[2] / "specs"


def longest_ids() -> tuple[str, str]:
    specs = load_specs(SPECS)
    return max(specs.models, key=len), max(specs.tasks, key=len)


def render(progress: FittedProgress, console: Console) -> list[str]:
    console.print(progress.make_tasks_table(progress.tasks))
    return console.export_text().splitlines()


def terminal(width: int) -> Console:
    return Console(width=width, record=True, file=io.StringIO(), force_terminal=True)


@pytest.mark.parametrize("width", [80, 100, 60])
def test_progress_at_narrow_width_keeps_counts_whole(width: int) -> None:
    model, task = longest_ids()
    console = terminal(width)
    progress = FittedProgress(console)
    run = progress.add_task("suite quickstart", total=18832, details="16368 cached, 0 failed")
    progress.update(run, completed=7016, rate="12.3 jobs/s")
    scored = progress.add_task(f"likelihood {model} on {task}", total=2464)
    progress.update(scored, completed=99)
    progress.add_task(f"{model}: embedding 2464 images", total=None)
    lines = render(progress, console)
    assert len(lines) == 3
    assert all(len(line) <= width for line in lines), lines
    assert "7016/18832" in lines[0] and "16368 cached, 0 failed" in lines[0]
    assert "99/2464" in lines[1]
    assert "…" in lines[1]  # the description gave way, not the numbers


def test_progress_at_80_columns_drops_optional_columns_before_counts() -> None:
    console = terminal(80)
    progress = FittedProgress(console)
    task = progress.add_task("suite quickstart", total=18832, details="16368 cached, 0 failed")
    progress.update(task, completed=7016, rate="12.3 jobs/s")
    [line] = render(progress, console)
    assert "12.3 jobs/s" not in line and "37%" not in line  # these go first
    assert "suite quickstart" in line  # then there was room for the whole description
    wide = terminal(140)
    progress = FittedProgress(wide)
    task = progress.add_task("suite quickstart", total=18832, details="16368 cached, 0 failed")
    progress.update(task, completed=7016, rate="12.3 jobs/s")
    [line] = render(progress, wide)
    assert "12.3 jobs/s" in line and "37%" in line


def test_step_in_a_log_writes_one_line_per_step_as_it_ends() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80)  # not a terminal: a CI log
    with step("probe stage", console=console):
        with step("pixel probes", total=4) as probes:
            probes.advance(4)
        assert out.getvalue().startswith("✓ pixel probes ")  # written when it ended
        with step("building the site"):
            pass
    lines = out.getvalue().splitlines()
    assert [line.split(" 0:00")[0].rstrip() for line in lines] == [
        "✓ pixel probes " + "━" * 40 + " 4/4 100%",
        "✓ building the site",
        "✓ probe stage",
    ]


def test_step_on_a_terminal_joins_the_outer_display() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    with step("probe stage", console=console), step("pixel probes", total=2) as probes:
        probes.advance(2)
    final = out.getvalue().split("\x1b[2K")[-1]  # the last frame, drawn over the live ones
    assert [line.split() for line in final.splitlines()[:2]] == [
        ["✓", "probe", "stage", "0:00:00"],
        ["✓", "pixel", "probes", "━" * 40, "2/2", "100%", "0:00:00", "0:00:00"],
    ]


def test_step_disabled_writes_nothing_nor_does_a_step_inside_it() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80)
    with step("suite t", total=3, console=console, enabled=False) as run:
        with step("tiny model m", total=2) as inner:
            inner.advance(2)
        run.advance(3)
    assert out.getvalue() == ""


def test_step_that_raises_ends_with_a_cross() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80)
    with pytest.raises(RuntimeError, match="^disk full$"), step("scoring", console=console):
        raise RuntimeError("disk full")
    assert out.getvalue().split() == ["✗", "scoring", "0:00:00"]
