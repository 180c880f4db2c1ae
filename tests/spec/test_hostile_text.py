"""Tests that every id, revision and reference is matched whole: `$` also matches before a
final newline, so a value ending in one must never pass."""

from __future__ import annotations

import re

import pytest

from medbench.errors import MedbenchError
from medbench.spec import check_revision
from medbench.spec.adhoc import adhoc_spec


def test_check_revision_trailing_newline_is_refused() -> None:
    message = (
        "not a branch, tag or 40-character commit sha, got 'main\\n'; a revision is never a path"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_revision("main\n")


def test_adhoc_spec_trailing_newline_is_refused() -> None:
    message = (
        "--model hf:org/name\n: expected hf:ORG/NAME or hf:ORG/NAME@REVISION (a branch, tag or "
        "commit sha)."
    )
    with pytest.raises(MedbenchError, match=f"^{re.escape(message)}$"):
        adhoc_spec("hf:org/name\n")
