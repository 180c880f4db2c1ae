"""A corpus of hostile inputs, each under a time and memory budget: what strangers send (templates,
answer texts in sidecars, records, maps) costs `validate`, `verify` and `site build` work linear
in its size, never a traceback.

Each case runs once under `tracemalloc`; its budget is wall-clock seconds and peak megabytes
(generous for a busy CI machine: the inputs here took minutes or gigabytes before they were
bounded). The whole corpus runs in a few seconds.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from medbench.errors import RecordError
from medbench.publish.reading import read_record
from medbench.publish.svgsafe import clean_svg
from medbench.score.parsing import MAX_PARSED_CHARS, parse_answer
from medbench.spec.prompts import render_text
from medbench.spec.sandbox import BudgetError

SECONDS = 3.0
MEGABYTES = 64


def _template(source: str, **context: object) -> Callable[[Path], object]:
    return lambda _: render_text(source, dict(context))


def _parse(text: str, **how: object) -> Callable[[Path], object]:
    return lambda _: parse_answer(text, ["pneumonia", "normal"], **how)  # type: ignore[arg-type]


def _record(text: str) -> Callable[[Path], object]:
    def read(folder: Path) -> object:
        path = folder / "q" / "m.json"
        path.parent.mkdir()
        path.write_text(text)
        return read_record(path)

    return read


SVG = b'<svg xmlns="http://www.w3.org/2000/svg">'
CASES: dict[str, tuple[Callable[[Path], object], tuple[type[Exception], ...]]] = {
    "format filter over a run of `{:`": (
        _template("{{ s|format(1) }}", s="{" + ":" * 50_000),
        (TypeError,),
    ),
    "str.format over a run of `{:`": (
        _template("{{ s.format(1) }}", s="{" + ":" * 50_000),
        (ValueError,),
    ),
    "a %-format width of 100,000 digits": (
        _template("{{ s % 1 }}", s="%" + "9" * 100_000 + "d"),
        (BudgetError,),
    ),
    "`~` doubling a text forty times": (
        _template(
            "{% set ns = namespace(a='x') %}{% for i in range(40) %}"
            "{% set ns.a = ns.a ~ ns.a %}{% endfor %}{{ ns.a }}"
        ),
        (BudgetError,),
    ),
    "`join` of a thousand 90,000-character texts": (
        _template("{% set a = 'x' * 90000 %}{{ ([a] * 1000)|join(', ') }}"),
        (BudgetError,),
    ),
    "a 300,000-character answer repeating `the answer is`": (
        _parse("the answer is " * 21_500),
        (),
    ),
    "a 300,000-character lettered answer of negations": (
        _parse("no pneumonia, " * 21_500, lettered=True),
        (),
    ),
    "a 300,000-character yes/no answer": (
        lambda _: parse_answer("is it yes? " * 27_000, ["yes", "no"], finding="pneumonia"),
        (),
    ),
    "a record nested 200,000 arrays deep": (_record("[" * 200_000 + "]" * 200_000), (RecordError,)),
    "a record of 100,000 nested objects": (
        _record('{"a":' * 100_000 + "1" + "}" * 100_000),
        (RecordError,),
    ),
    "a record whose number has 100,000 digits": (
        _record('{"x": ' + "9" * 100_000 + "}"),
        (RecordError,),
    ),
    "a record repeating one key 100,000 times": (
        _record("{" + ", ".join(['"date": "2026-01-01"'] * 100_000) + "}"),
        (RecordError,),
    ),
    "a map nested 20,000 elements deep": (
        lambda _: clean_svg(SVG + b"<g>" * 20_000 + b"</g>" * 20_000 + b"</svg>"),
        (ValueError,),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input_stays_within_its_budget(name: str, tmp_path: Path) -> None:
    run, expected = CASES[name]
    tracemalloc.start()
    start = time.perf_counter()
    try:
        run(tmp_path)
    except expected:
        pass
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    assert seconds < SECONDS, f"{name}: {seconds:.2f} s"
    assert peak < MEGABYTES, f"{name}: {peak:.0f} MB"


def test_parse_answer_reads_only_the_start_of_a_long_reply() -> None:
    filler = "the image is unremarkable. " * (MAX_PARSED_CHARS // 27 + 1)
    late = parse_answer(filler + "The answer is pneumonia.", ["pneumonia", "normal"])
    early = parse_answer("The answer is pneumonia. " + filler, ["pneumonia", "normal"])
    assert (late.label, early.label) == (None, "pneumonia")
