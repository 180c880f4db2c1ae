import re

import pytest
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError

from medbench.spec.prompts import DESCRIPTION_MARK, environment, render_text
from medbench.spec.sandbox import BudgetError


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 10**9 }}",
        "{{ 10**9 * 'x' }}",
        "{{ 2 ** 100000 }}",
        "{% set a = 'x' * 90000 %}{{ a + a }}",
        "{{ [0] * 1000000 }}",
    ],
)
def test_render_text_refuses_memory_bombs(source: str) -> None:
    with pytest.raises(SecurityError):
        render_text(source, {})


def test_render_text_allows_small_arithmetic() -> None:
    assert render_text("{{ 'ab' * 3 }} {{ 2 ** 10 }} {{ 'a' + 'b' }}", {}) == "ababab 1024 ab"


def test_render_text_refuses_undefined_variables_and_attributes_of_python_objects() -> None:
    with pytest.raises(UndefinedError):
        render_text("{{ nope }}", {})
    with pytest.raises(SecurityError):
        render_text("{{ ''.__class__.__mro__ }}", {})


def test_environment_is_shared() -> None:
    assert environment() is environment()


BUDGET_CONTEXT = {"question": "Does this chest X-ray show pneumonia?", "description": "x" * 40}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "{{ question|center(10**8) }}",
            "the filter `center` was given 100000000, over the limit of 1000",
        ),
        (
            "{{ question|indent(5000) }}",
            "the filter `indent` was given 5000, over the limit of 1000",
        ),
        ("{{ 'x'.ljust(100000000) }}", "`str.ljust` was given 100000000, over the limit of 1000"),
        ("{{ '%100000000s'|format('x') }}", "a format width of 100000000, over the limit of 1000"),
        ("{{ '%.99999999f' % 1.0 }}", "a format width of 99999999, over the limit of 1000"),
        ("{{ '{:>99999999}'.format('x') }}", "a format width of 99999999, over the limit of 1000"),
        (
            "{{ '{:{}}'.format('x', 10**8) }}",
            "a format width taken from an argument is not allowed",
        ),
        ("{{ '%*d' % (10**8, 1) }}", "a format width taken from an argument is not allowed"),
        (
            "{{ (description * 2000).replace('x', question) }}",
            "`str.replace` would build 2960000 characters, over 100000",
        ),
        (
            "{% for i in range(3000) %}{{ description }}{% endfor %}",
            "the template renders over 100000 characters",
        ),
        (
            "{{ [1, 2]|slice(100000000)|list }}",
            "the filter `slice` was given 100000000, over the limit of 1000",
        ),
    ],
)
def test_render_text_refuses_sizes_over_the_budget(source: str, message: str) -> None:
    from medbench.spec.sandbox import BudgetError

    with pytest.raises(BudgetError, match=f"^{re.escape(message)}$"):
        render_text(source, BUDGET_CONTEXT)


def test_render_text_stops_a_template_running_past_its_time_budget() -> None:
    import sys
    import time

    from medbench.spec.sandbox import BudgetError

    def tracer(frame: object, event: str, arg: object) -> None:
        return None

    source = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    start = time.perf_counter()
    sys.settrace(tracer)
    try:
        with pytest.raises(BudgetError, match=r"^the template ran for over 1 s$"):
            render_text(source, BUDGET_CONTEXT)
        assert sys.gettrace() is tracer  # the previous tracer (coverage, a debugger) is back
    finally:
        sys.settrace(None)
    assert time.perf_counter() - start < 30  # unbounded, the loops would run for hours


def test_render_text_has_no_lipsum_global() -> None:
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError, match=r"^'lipsum' is undefined$"):
        render_text("{{ lipsum(1000) }}", BUDGET_CONTEXT)


def test_render_guided_variant_leaves_out_a_class_without_signs() -> None:
    from pathlib import Path

    from medbench.spec.loading import load_specs
    from medbench.spec.prompts import render

    specs = load_specs(Path(__file__).resolve().parents[2] / "specs")
    task = specs.tasks["pneumonia_cxr"]
    labels = tuple(
        label.model_copy(update={"signs": ()}) if label.id == "normal" else label
        for label in task.labels
    )
    family = specs.families["closed_diagnosis"]
    guided = next(v for v in family.variants if v.id == "guided")
    rendered = render(family, guided, task.model_copy(update={"labels": labels}), ())
    assert rendered.messages.text == (
        "Does this chest X-ray show pneumonia? Consider these signs: pneumonia: focal lobar "
        "consolidation, air bronchograms, patchy or interstitial opacities, pleural effusion, "
        "silhouette sign. Answer with one of: pneumonia, normal."
    )


def test_render_text_refuses_the_random_filter() -> None:
    with pytest.raises(TemplateSyntaxError, match="^No filter named 'random'.$"):
        render_text("{{ ['Answer.', 'Answer pneumonia.'] | random }}", {})


def test_render_text_bounds_what_the_filled_in_values_build() -> None:
    source = "{% for _ in range(200) %}{{ description }}{% endfor %}"
    values = {DESCRIPTION_MARK: "a long description " * 50}
    with pytest.raises(BudgetError, match="renders over 100000 characters"):
        render_text(source, {"description": DESCRIPTION_MARK}, values)
