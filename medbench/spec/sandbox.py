"""The Jinja sandbox prompts render in, bounded in time and size: templates come from strangers.

Jinja's immutable sandbox stops attribute and global escapes; it does not stop a template
from running for minutes (nested loops) or building a 100 MB prompt (`center(10**8)`, format
widths, `replace`). Here every value a template builds is bounded: arithmetic, filter and
string-method arguments that set a size, format widths, and the rendered output; and a
render stops once it has run for `MAX_RENDER_SECONDS`.
"""

from __future__ import annotations

import re
import string
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

from jinja2 import StrictUndefined, Template, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from medbench.errors import MedbenchError

MAX_RENDERED = 100_000
"""Largest value (characters or items) a template may build, and the most it may render."""
MAX_WIDTH = 1_000
"""Largest size argument (a width, a count, a format width or precision) a template may pass."""
MAX_RENDER_SECONDS = 1.0
"""Longest a template may take to render."""
SIZED_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "replace"})
_PERCENT = re.compile(r"%[-+ #0]*(\*|\d*)(?:\.(\*|\d*))?")
"""A `%` conversion's flags, width and precision: each match starts at a `%` and stops at the
first character that is none of these, so a scan is linear in the text."""
_SPEC_NUMBER = re.compile(r"\d+")


class BudgetError(SecurityError, MedbenchError):
    """A template went over its time or size budget."""


def _check_sizes(args: tuple[Any, ...], kwargs: dict[str, Any], what: str) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WIDTH:
            raise BudgetError(f"{what} was given {value}, over the limit of {MAX_WIDTH}")


def _check_format(text: str) -> None:
    """Refuse `%`-style and `{:...}` format widths or precisions over MAX_WIDTH, and widths
    taken from arguments (`%*d`, `{:{}}`), which cannot be checked here. Linear in the text
    (a stranger's template may hold a long run of `{:` or `%`)."""
    for match in _PERCENT.finditer(text):
        _check_widths(match.groups())
    if "{" not in text:
        return
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:
        return  # not a `{}` format string: `str.format` refuses it itself
    for _, _, spec, _ in fields:
        _check_widths(_SPEC_NUMBER.findall(spec or ""), spec)


def _check_widths(numbers: Iterable[str | None], spec: str | None = None) -> None:
    if (spec is not None and "{" in spec) or any(n == "*" for n in numbers):
        raise BudgetError("a format width taken from an argument is not allowed")
    for number in numbers:
        if number and (len(number) > 6 or int(number) > MAX_WIDTH):
            shown = number if len(number) <= 12 else number[:12] + "..."
            raise BudgetError(f"a format width of {shown}, over the limit of {MAX_WIDTH}")


def _replaced_size(text: Any, old: Any, new: Any) -> int:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    hits = text.count(old) if old else len(text) + 1
    return len(text) + hits * (len(new) - len(old))


def _check_replace(size: int, what: str) -> None:
    if size > MAX_RENDERED:
        raise BudgetError(f"{what} would build {size} characters, over {MAX_RENDERED}")


def _check_result(value: Any, what: str) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_RENDERED:
        raise BudgetError(f"{what} built a value of {len(value)} items, over {MAX_RENDERED}")
    return value


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    passes = hasattr(function, "jinja_pass_arg")

    @wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        # A filter that takes the environment, context or eval context gets it first.
        values = list(args[1:] if passes else args)
        _check_sizes(tuple(values[1:]), kwargs, f"the filter `{name}`")
        if name == "format" and values and isinstance(values[0], str):
            _check_format(values[0])
        if name == "replace" and len(values) >= 3:
            _check_replace(_replaced_size(*values[:3]), f"the filter `{name}`")
        if name == "join" and values:
            separator = values[1] if len(values) > 1 else kwargs.get("d", "")
            _joined_size(values[0], separator, f"the filter `{name}`")
        return _check_result(function(*args, **kwargs), f"the filter `{name}`")

    return bounded


def _joined_size(items: Any, separator: Any, what: str) -> None:
    """Refuse joining `items` (strings or lists of them) into over MAX_RENDERED characters,
    counted before anything is built."""
    if not isinstance(items, str | list | tuple):
        return
    step = len(separator) if isinstance(separator, str) else 0
    size = 0
    for item in items:
        size += (len(item) if isinstance(item, str | list | tuple) else 20) + step
        if size > MAX_RENDERED:
            raise BudgetError(f"{what} would build over {MAX_RENDERED} characters")


def _built_size(operator: str, left: Any, right: Any) -> int:
    sized = (str, list, tuple)
    if operator == "*" and isinstance(left, int) and isinstance(right, sized):
        return left * len(right)
    if operator == "*" and isinstance(left, sized) and isinstance(right, int):
        return len(left) * right
    if operator == "+" and isinstance(left, sized) and isinstance(right, sized):
        return len(left) + len(right)
    return 0


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles `~` (concatenation) to the environment's `bounded_join` instead of Jinja's
    unbounded `str_join`; the sandbox does not intercept `~` otherwise."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile or frame.eval_ctx.autoescape:
            super().visit_Concat(node, frame)
            return
        self.write("environment.bounded_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class PromptEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with every size bounded, no `lipsum` (it builds text on demand) and no
    `random` filter: a prompt is a function of its inputs, so that what reviewers are shown
    (`scripts/prompt_diff.py`) is what models are sent."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)
        self.filters = {
            name: _bounded_filter(name, f) for name, f in self.filters.items() if name != "random"
        }

    code_generator_class = _BoundedCodeGenerator

    def bounded_join(self, parts: tuple[Any, ...]) -> str:
        """What `a ~ b ~ ...` builds, refused before it passes MAX_RENDERED characters."""
        _joined_size(tuple(str(part) for part in parts), "", "the operator `~`")
        return "".join(str(part) for part in parts)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise BudgetError(f"exponent {right} is too large for a prompt template")
        if _built_size(operator, left, right) > MAX_RENDERED:
            raise BudgetError(f"a template builds a value over {MAX_RENDERED} items")
        if operator == "%" and isinstance(left, str):
            _check_format(left)
        result = super().call_binop(context, operator, left, right)
        return _check_result(result, f"the operator `{operator}`")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        method = getattr(__obj, "__wrapped__", __obj)
        owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
        if isinstance(owner, str):
            if name in SIZED_METHODS and name != "replace":
                _check_sizes(args, kwargs, f"`str.{name}`")
            if name in ("format", "format_map"):
                _check_format(owner)
            if name == "replace" and len(args) >= 2:
                _check_replace(_replaced_size(owner, args[0], args[1]), "`str.replace`")
        result = super().call(__context, __obj, *args, **kwargs)
        return _check_result(result, f"calling `{name or type(__obj).__name__}`")


@contextmanager
def time_budget(seconds: float = MAX_RENDER_SECONDS) -> Iterator[None]:
    """Raise BudgetError inside any template code still running after `seconds` of CPU time.

    A trace function sees every line of the compiled template (its loops included) and
    nothing else; the previous tracer (a debugger, coverage) is restored afterwards.
    """
    # CPU time of this thread, not the wall clock: a busy machine must not fail a template.
    deadline = time.thread_time() + seconds
    events = [0]

    def line(frame: Any, event: str, arg: Any) -> Any:
        events[0] += 1
        if events[0] % 16 == 0 and time.thread_time() > deadline:
            raise BudgetError(f"the template ran for over {seconds:g} s")
        return line

    def calls(frame: Any, event: str, arg: Any) -> Any:
        return line if frame.f_code.co_filename == "<template>" else None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        yield
    finally:
        sys.settrace(previous)


def render_bounded(template: Template, context: dict[str, Any]) -> str:
    """Render under the time budget, stopping once the output passes MAX_RENDERED."""
    parts, size = [], 0
    with time_budget():
        for part in template.generate(context):
            size += len(part)
            if size > MAX_RENDERED:
                raise BudgetError(f"the template renders over {MAX_RENDERED} characters")
            parts.append(part)
    return "".join(parts)


def new_environment() -> PromptEnvironment:
    """The environment for prompts: sandboxed, bounded, strict, no autoescape (plain text)."""
    return PromptEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
    )
