"""The GPU check's measurements and its summary: the events one model's run sends as each step
ends, what the parent makes of them (kept when the run is cut short), and the final table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from medbench.run.cost import Speed


@dataclass(frozen=True)
class Begun:
    """A step began (named in the summary when the model's time runs out during it)."""

    step: str

    def line(self) -> str:
        return f"{self.step} ..."


@dataclass(frozen=True)
class Loaded:
    """The model loaded: in how long, the dtype it computes in, where it was placed."""

    seconds: float
    dtype: str
    placement: str | None = None

    def line(self) -> str:
        placed = f", {self.placement}" if self.placement is not None else ""
        return f"loaded in {self.seconds:.1f} s ({self.dtype}{placed})"


@dataclass(frozen=True)
class Answered:
    """The sample requests answered at one batch size (`auto`: the size the sizer settled on)."""

    batch: int
    auto: bool
    requests_per_s: float
    texts: tuple[str | None, ...]

    def line(self) -> str:
        kind = "auto batch" if self.auto else "batch"
        return f"{kind} {self.batch}: {self.requests_per_s:.2f} requests/s"


@dataclass(frozen=True)
class Scored:
    """One likelihood batch: the options of `requests` scored in `passes` forward passes."""

    requests: int
    passes: int
    requests_per_s: float

    def line(self) -> str:
        return (
            f"likelihood: {self.requests} requests in {self.passes} forward passes, "
            f"{self.requests_per_s:.2f} requests/s"
        )


@dataclass(frozen=True)
class Described:
    """One description-length generation: its tokens, time and whether it hit its budget."""

    tokens: int
    budget: int
    seconds: float
    finish_reason: str | None

    def line(self) -> str:
        return (
            f"description: {self.tokens} of {self.budget} tokens in {self.seconds:.1f} s "
            f"({self.finish_reason or 'finish unknown'})"
        )


@dataclass(frozen=True)
class Peak:
    """The peak GPU memory so far (summed over the GPUs); None off CUDA."""

    mib: float | None

    def line(self) -> str:
        return f"peak memory {'n/a (not CUDA)' if self.mib is None else f'{self.mib:.0f} MiB'}"


@dataclass(frozen=True)
class Calibrated:
    """With `--calibration`: the measured prefill and decode speeds."""

    speed: Speed

    def line(self) -> str:
        s = self.speed
        return (
            f"prefill {s.prefill_tokens_per_s:,.0f} tokens/s, decode "
            f"{s.decode_tokens_per_s:,.0f} tokens/s (batch {s.batch_size})"
        )


@dataclass(frozen=True)
class Note:
    """A line to show as it is (the vLLM comparison)."""

    text: str

    def line(self) -> str:
        return self.text


Event = Begun | Loaded | Answered | Scored | Described | Peak | Calibrated | Note


@dataclass
class ModelReport:
    """What one model's run measured, step by step, and how it ended."""

    model: str
    events: list[Event] = field(default_factory=list)
    template: str = "-"
    """The real-template prompt test: `pass`, `FAIL`, `skipped`, or why it was not run."""
    timed_out_s: float | None = None
    error: str | None = None

    def first(self, kind: type[Event], auto: bool | None = None) -> Event | None:
        for event in self.events:
            if isinstance(event, kind) and (auto is None or getattr(event, "auto", None) == auto):
                return event
        return None

    @property
    def step(self) -> str | None:
        """The step under way when the run ended (None: it ended between steps)."""
        for event in reversed(self.events):
            if not isinstance(event, Peak):
                return event.step if isinstance(event, Begun) else None
        return None

    @property
    def status(self) -> str:
        if self.timed_out_s is not None:
            return f"timed out after {self.timed_out_s:.0f} s"
        if self.error is not None or self.template.startswith("FAIL"):
            return "FAILED"
        return "ok"

    @property
    def failed(self) -> bool:
        return self.status != "ok"

    def differ(self) -> str:
        one, auto = self.first(Answered, False), self.first(Answered, True)
        if not isinstance(one, Answered) or not isinstance(auto, Answered):
            return "-"
        differ = sum(a != b for a, b in zip(one.texts, auto.texts, strict=True))
        return f"{differ} of {len(one.texts)}"

    def cells(self) -> list[str]:
        loaded, one = self.first(Loaded), self.first(Answered, False)
        auto, scored = self.first(Answered, True), self.first(Scored)
        described = self.first(Described)
        peaks = [e.mib for e in self.events if isinstance(e, Peak) and e.mib is not None]
        return [
            self.model,
            loaded.dtype if isinstance(loaded, Loaded) else "-",
            f"{loaded.seconds:.1f}" if isinstance(loaded, Loaded) else "-",
            f"{one.requests_per_s:.2f}" if isinstance(one, Answered) else "-",
            str(auto.batch) if isinstance(auto, Answered) else "-",
            f"{auto.requests_per_s:.2f}" if isinstance(auto, Answered) else "-",
            f"{max(peaks):.0f}" if peaks else "-",
            self.differ(),
            f"{scored.requests_per_s:.2f}" if isinstance(scored, Scored) else "-",
            f"{described.tokens}/{described.budget}" if isinstance(described, Described) else "-",
            self.template.split(":", 1)[0],
            self.status,
        ]

    def explanation(self) -> str | None:
        """A line saying why the model did not pass (None when it did)."""
        during = f" during {self.step}" if self.step is not None else ""
        if self.timed_out_s is not None:
            return f"{self.model}: timed out after {self.timed_out_s:.0f} s{during}; " + (
                "the steps it finished are kept above"
            )
        if self.error is not None:
            return f"{self.model}: FAILED{during}: {self.error}"
        if self.template.startswith("FAIL"):
            return f"{self.model}: the real-template prompt test failed ({self.template})"
        return None


COLUMNS = (
    "model",
    "dtype",
    "load s",
    "batch 1 requests/s",
    "auto batch",
    "auto requests/s",
    "peak GPU MiB",
    "answers differ",
    "likelihood requests/s",
    "description tokens",
    "template test",
    "status",
)


def summary_table(reports: Sequence[ModelReport]) -> list[str]:
    """The summary: one row per model (`-` where a step did not finish), then why any failed."""
    rows = [list(COLUMNS), *(report.cells() for report in reports)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    lines += [line for r in reports if (line := r.explanation()) is not None]
    return lines
