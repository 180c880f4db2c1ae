import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from medbench.prompts import environment, render_text


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
