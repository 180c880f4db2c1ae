"""Tests that every id, revision and reference is matched whole: `$` also matches before a
final newline, so a value ending in one must never pass."""

from __future__ import annotations

import re
from pathlib import Path

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


def test_label_spec_name_is_nfkc_normalised() -> None:
    from medbench.spec.task import LabelSpec

    label = LabelSpec(id="normal", name="\uff4eormal", aliases=("no \ufb01ndings",))
    assert (label.name, label.aliases) == ("normal", ("no findings",))


def test_printable_escapes_controls_and_workflow_commands() -> None:
    from medbench.errors import printable

    text = "a\x1b]0;owned\x07b\n::error title=Approved::ok\n  ::warning x\nfine :: here\u202e\n"
    assert printable(text) == (
        "a\\x1b]0;owned\\x07b\n\\::error title=Approved::ok\n  \\::warning x\nfine :: here\\u202e\n"
    )


def test_validate_prints_no_raw_control_character_or_workflow_command(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from medbench.commands.validate import validate

    suite = tmp_path / "specs" / "suites" / "demo.yaml"
    suite.parent.mkdir(parents=True)
    suite.write_text(
        "schema_version: 1\nkind: suite\nid: demo\ntitle: T\ndata: sample\n"
        'tasks: ["a\\e]0;owned\\a\\n::error title=Approved::b"]\n'
        "prompt_families: [x]\nmodels: [y]\n"
    )
    app = typer.Typer()
    app.command()(validate)
    app.command()(lambda: None)
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "specs")])
    assert result.exit_code == 2
    first = result.output.splitlines()[:2]
    assert first == [
        f"{suite}:6:9: tasks.0: not a valid id, got 'a\\x1b]0;owned\\x07",
        "\\::error title=Approved::b'. Ids use a-z, 0-9, '.', '_' and '-', and start with a letter "
        "or a digit.",
    ]
