"""Progress on stderr: a bar with counts (or a spinner) per step, fitted to the terminal's width.

On a terminal each step is a live line, and steps started inside a step join its display;
where stderr is not a terminal (a CI log, a file) a step writes one line when it ends, with
its counts and time, and nothing while it runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

BAR_WIDTHS = (10, 40)
"""The bar's least and greatest width: it takes what the description leaves."""
DESCRIPTION_MIN = 12
"""The description gives way (with an ellipsis) down to this; then optional columns go."""
DROPPED_FIRST = ("percent", "rate", "remaining", "elapsed", "details")
"""The optional columns, in the order they give way on a narrow terminal (counts never do)."""
BROKEN = "broken"
"""The field of a step that ended by an exception."""


class _Mark(SpinnerColumn):
    """A spinner while the step runs, a tick once it is done, a cross if it raised."""

    def render(self, task: Task) -> RenderableType:
        if task.fields.get(BROKEN):
            return Text("✗", style="red")
        if task.finished or task.stop_time is not None:
            return Text("✓", style="green")
        return super().render(task)


class _Counts(ProgressColumn):
    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return Text(f"{int(task.completed)}/{int(task.total)}", style="progress.download")


class _Percent(ProgressColumn):
    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return Text(f"{task.percentage:>3.0f}%", style="progress.percentage")


class _Field(ProgressColumn):
    """A step's own field (`details`, `rate`), empty where the step has none."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def render(self, task: Task) -> Text:
        return Text(str(task.fields.get(self.name, "")))


class _Remaining(TimeRemainingColumn):
    def render(self, task: Task) -> Text:
        return Text("") if task.total is None else super().render(task)


class FittedProgress(Progress):
    """rich's Progress, laid out to the console's width: numbers are never cut; the bar
    gives way first (down to 10 columns), then the description (with an ellipsis, down to
    12), then the optional columns, one by one."""

    def __init__(self, console: Console, *, disable: bool = False) -> None:
        self.bar = BarColumn(bar_width=BAR_WIDTHS[1])
        self.screen = console  # rich asks for the layout before its own console is set
        self.named: dict[str, ProgressColumn] = {
            "mark": _Mark(),
            "counts": _Counts(),
            "percent": _Percent(),
            "details": _Field("details"),
            "rate": _Field("rate"),
            "elapsed": TimeElapsedColumn(),
            "remaining": _Remaining(),
        }
        super().__init__(
            *self.named.values(),
            console=console,
            disable=disable,
            transient=False,
            redirect_stdout=False,  # results go to stdout, never into the display
        )

    def stop(self) -> None:
        if self.disable:
            return
        self.live.stop()
        # rich ends a log's last line here, but a display inside another has ended its own:
        # no blank line after it.
        if not getattr(self.live, "_nested", False) and not self.screen.is_interactive:
            self.screen.print()

    def make_tasks_table(self, tasks: Iterable[Task]) -> Table:
        shown = [task for task in tasks if task.visible]
        cells = {name: [column(task) for task in shown] for name, column in self.named.items()}
        widths = {name: self._widest(row) for name, row in cells.items()}
        kept = [name for name in self.named if widths[name] > 0 or name == "mark"]
        descriptions = [Text(task.description, style="bold") for task in shown]
        wanted = max((d.cell_len for d in descriptions), default=0)
        has_bar = any(task.total is not None for task in shown)
        least_bar = BAR_WIDTHS[0] if has_bar else 0

        def room(names: list[str]) -> int:
            gaps = len(names) + has_bar  # a space between each two columns (and the text)
            return self.screen.width - sum(widths[n] for n in names) - gaps

        for name in DROPPED_FIRST:
            if room(kept) >= min(wanted, DESCRIPTION_MIN) + least_bar or name not in kept:
                continue
            kept.remove(name)
        left = max(room(kept), 1)
        bar = min(BAR_WIDTHS[1], max(least_bar, left - wanted)) if has_bar else 0
        text = max(1, min(wanted, left - bar))
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True, width=widths["mark"])
        table.add_column(no_wrap=True, overflow="ellipsis", width=text)
        if has_bar:
            self.bar.bar_width = bar
            table.add_column(no_wrap=True, width=bar)
        for name in kept[1:]:
            right = name in {"counts", "percent"}
            table.add_column(no_wrap=True, width=widths[name], justify="right" if right else "left")
        for i, task in enumerate(shown):
            row: list[RenderableType] = [cells["mark"][i], descriptions[i]]
            if has_bar:  # a step without a count has no bar: its spinner shows it runs
                row.append(self.bar(task) if task.total is not None else Text(""))
            row += [cells[name][i] for name in kept[1:]]
            table.add_row(*row)
        return table

    def _widest(self, renderables: list[RenderableType]) -> int:
        return max((self.screen.measure(r).maximum for r in renderables), default=0)


@dataclass(frozen=True)
class Step:
    """A running step: `advance` moves its count and may set its fields."""

    progress: Progress
    task: TaskID

    def advance(self, n: float = 1, **fields: Any) -> None:
        self.progress.update(self.task, advance=n, **fields)

    def update(self, **fields: Any) -> None:
        self.progress.update(self.task, **fields)


_lock = threading.Lock()
_showing: list[FittedProgress] = []


@contextmanager
def step(
    description: str,
    total: int | None = None,
    *,
    console: Console | None = None,
    enabled: bool = True,
    **fields: Any,
) -> Iterator[Step]:
    """Show a step on stderr (or `console`): a bar with counts when `total` is known, else a
    spinner with its name; it stays as one line when done. On a terminal a step inside another
    joins the outer one's display; elsewhere each step writes its line as it ends (and a step
    inside a hidden one is hidden)."""
    with _lock:
        outer = _showing[-1] if _showing else None
        owner = outer is None or (not outer.screen.is_terminal and not outer.disable)
        if owner:
            screen = outer.screen if outer is not None else console or Console(stderr=True)
            _showing.append(FittedProgress(screen, disable=not enabled))
        progress = _showing[-1]
    if owner:
        progress.start()
    task = progress.add_task(description, total=total, **fields)
    try:
        yield Step(progress, task)
    except BaseException:
        progress.update(task, broken=True)  # the field BROKEN names
        raise
    finally:
        progress.stop_task(task)
        if owner:
            progress.stop()
            with _lock:
                _showing.remove(progress)
