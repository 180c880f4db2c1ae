"""Matplotlib figures as deterministic SVG text: the same figure gives the same bytes.

Shared by the t-SNE maps and the reliability diagrams, which are published beside records
and compared byte for byte by `medbench verify`: no dates or tool names in the metadata, a
fixed id salt, text kept as text, no DOCTYPE, and a `<title>` for screen readers.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

RC = {"svg.hashsalt": "medbench", "svg.fonttype": "none", "font.size": 10}
"""Figures are drawn at most `MAX_WIDTH` inches wide with text of at least 10 pt, so that a
figure scaled down to a phone's column (about 350 px) keeps its text at 11 px or more."""
MAX_WIDTH = 4.4


def wrap_title(text: str, width: float, size: float = 10) -> str:
    """`text` broken at word boundaries into lines that fit `width` inches at `size` pt (a
    character is about 0.55 em wide): a figure's title is never cut at its edge."""
    import textwrap

    chars = max(12, int(width * 72 / (0.55 * size)))
    return "\n".join(textwrap.wrap(text, chars, break_long_words=False, break_on_hyphens=False))


@contextmanager
def figure_style() -> Iterator[None]:
    """The matplotlib settings every medbench figure is drawn and saved under."""
    import matplotlib

    with matplotlib.rc_context(RC):
        yield


def figure_svg(figure: Any, title: str) -> str:
    """`figure` saved as SVG text, with `title` (escaped) as its first child. Call inside
    `figure_style()`."""
    buffer = io.StringIO()
    figure.savefig(
        buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None}
    )
    svg = re.sub(r"<!DOCTYPE[^>]*>\n?", "", buffer.getvalue())  # its DTD address is never needed
    return re.sub(
        r"(<svg[^>]*>)",
        lambda m: f"{m.group(1)}\n <title>{html.escape(title)}</title>",
        svg,
        count=1,
    )


__all__ = ["MAX_WIDTH", "figure_style", "figure_svg", "wrap_title"]
