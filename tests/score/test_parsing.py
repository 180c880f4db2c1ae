"""Tests for the answer parser and the `medbench parse` command."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import typer
from ruamel.yaml import YAML
from typer.testing import CliRunner

from medbench.commands.parse import parse
from medbench.score import parsing
from medbench.score.parsing import RULES, ParsedAnswer, decide, lexicon, parse_answer, patterns

CASES_DIR = Path(__file__).parents[1] / "cases" / "parsing"
CASE_FILES = ("yes_no", "closed", "lettered", "refusals", "unparseable", "negations", "cues")
REAL_FILES = (
    "sentence_yes_no",
    "declines",
    "disclaimers",
    "long_options",
    "echoes",
    "sentence_options",
)
"""Issue 15's cases, one file per failure class, tagged with `class` and `style`."""
CASE_KEYS = {"text", "options", "lettered", "aliases", "status", "label", "rule", "note"}
CASE_KEYS |= {"finding", "class", "style", "near_miss"}
CLASSES = {
    "yes_no_sentence",
    "decline",
    "disclaimer_after",
    "long_option",
    "echo",
    "sentence_option",
}
STYLES = {"llava-1.5", "llava-med", "gemma-3", "medgemma", "qwen-vl", "gpt"}
DOCUMENTED_RULES = {
    "empty",
    "final_answer",
    "leading_yes_no",
    "letter",
    "conflict",
    "option_text",
    "negated_option",
    "repetition",
    "refusal",
    "multiple_options",
    "no_option",
}
BRAIN = ["glioma", "meningioma", "no tumor", "pituitary tumor"]


def _load_cases(files: Sequence[str] = CASE_FILES + REAL_FILES) -> list[tuple[str, dict[str, Any]]]:
    yaml = YAML(typ="safe")
    cases = []
    for name in files:
        loaded = yaml.load((CASES_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
        cases += [(f"{name}[{i}]", case) for i, case in enumerate(loaded)]
    return cases


CASES = _load_cases()
REAL_CASES = _load_cases(REAL_FILES)


def _parse_case(case: Mapping[str, Any], text: str | None = None) -> ParsedAnswer:
    return parse_answer(
        case["text"] if text is None else text,
        case["options"],
        lettered=case.get("lettered", False),
        aliases=case.get("aliases"),
        finding=case.get("finding"),
    )


@pytest.mark.parametrize("case", [c for _, c in CASES], ids=[i for i, _ in CASES])
def test_parse_answer_matches_golden_case(case: dict[str, Any]) -> None:
    parsed = _parse_case(case)
    assert (parsed.status, parsed.label) == (case["status"], case["label"])
    if "rule" in case:
        assert parsed.rule == case["rule"]


def test_golden_cases_have_known_fields_and_consistent_labels() -> None:
    for case_id, case in CASES:
        assert set(case) <= CASE_KEYS, case_id
        assert {"text", "options", "status", "label"} <= set(case), case_id
        assert (case["label"] is None) == (case["status"] != "answer"), case_id
        assert case["label"] is None or case["label"] in case["options"], case_id


def test_golden_cases_number_at_least_200_and_cover_every_rule() -> None:
    assert len(CASES) >= 200
    assert {_parse_case(case).rule for _, case in CASES} == RULES


def test_real_style_cases_number_at_least_300_and_are_tagged() -> None:
    assert len(REAL_CASES) >= 300
    for case_id, case in REAL_CASES:
        assert case["class"] in CLASSES, case_id
        assert case["style"] in STYLES, case_id
        assert "rule" not in case, case_id  # labelled by what the reply says, not by a rule
    assert {case["class"] for _, case in REAL_CASES} == CLASSES
    assert {case["style"] for _, case in REAL_CASES} == STYLES
    for name in CLASSES:
        mine = [case for _, case in REAL_CASES if case["class"] == name]
        assert any(case.get("near_miss") for case in mine), name


def _lexicon_entries() -> list[tuple[str, str]]:
    entries = [(f"COMMITMENTS.{g}", f) for g, fs in lexicon.COMMITMENTS.items() for f in fs]
    entries += [
        (f"CUES_BEFORE.{g}", rf"\b(?:{f})\b") for g, fs in lexicon.CUES_BEFORE.items() for f in fs
    ]
    entries += [(f"CUES_AFTER.{g}", f) for g, fs in lexicon.CUES_AFTER.items() for f in fs]
    for name in ("APOLOGIES", "DECLINES", "DEFERRALS", "DISCLAIMERS", "SCOPE_BREAKS"):
        entries += [(name, f) for f in getattr(lexicon, name)]
    return entries


def test_every_lexicon_phrase_occurs_in_a_golden_case() -> None:
    texts = [patterns.normalize(case["text"]) for _, case in CASES]
    unused = [
        (name, fragment)
        for name, fragment in _lexicon_entries()
        if not any(re.search(fragment, text) for text in texts)
    ]
    assert unused == []


def test_rules_are_the_documented_set() -> None:
    assert RULES == DOCUMENTED_RULES
    documented = {
        line.split("`")[1]
        for line in (parsing.__doc__ or "").splitlines()
        if line.startswith("- `")
    }
    assert documented == DOCUMENTED_RULES


def _fuzz_texts(seed: int, n: int) -> list[str]:
    """Replies stitched from golden-case fragments: messy but deterministic."""
    rng = random.Random(seed)
    words = [w for _, case in CASES for w in case["text"].split()]
    return [" ".join(rng.choices(words, k=rng.randrange(0, 30))) for _ in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parse_answer_label_is_an_option_or_none(seed: int) -> None:
    options_sets: list[Sequence[str]] = [BRAIN, ["normal", "pneumonia"], ["yes", "no"]]
    for text in _fuzz_texts(seed, 300):
        for options in options_sets:
            for lettered in (False, True):
                parsed = parse_answer(text, options, lettered=lettered)
                assert parsed.rule in RULES
                assert (parsed.label is None) == (parsed.status != "answer")
                assert parsed.label is None or parsed.label in options


@pytest.mark.parametrize(
    "transform",
    [str.upper, str.lower, lambda t: f"**{t}**", lambda t: f"__{t}__", lambda t: f"`{t}`"],
    ids=["upper", "lower", "bold", "underscore-bold", "code"],
)
def test_parse_answer_ignores_case_and_surrounding_markdown(transform: Any) -> None:
    for case_id, case in CASES:
        assert _parse_case(case, transform(case["text"])) == _parse_case(case), case_id


@pytest.mark.parametrize("text", ["", " ", "\n\t ", "**", "  ***  "])
@pytest.mark.parametrize("options", [BRAIN, ["yes", "no"]])
def test_parse_answer_empty_text_is_unparseable(text: str, options: list[str]) -> None:
    assert parse_answer(text, options) == ParsedAnswer("unparseable", None, "empty")


def test_parse_answer_returns_alias_option_verbatim() -> None:
    parsed = parse_answer("Nevus.", ["Benign", "Malignant"], aliases={"Benign": ["nevus"]})
    assert parsed == ParsedAnswer("answer", "Benign", "option_text")


def test_parse_answer_accepts_a_single_string_alias() -> None:
    parsed = parse_answer("Nevus.", ["benign", "malignant"], aliases={"benign": "nevus"})
    assert parsed == ParsedAnswer("answer", "benign", "option_text")


def test_parse_answer_rejects_alias_of_unknown_option() -> None:
    message = "alias key 'tumour' is not one of the options " + repr(BRAIN)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_answer("glioma", BRAIN, aliases={"tumour": ["mass"]})


def test_parse_answer_with_no_options_is_unparseable() -> None:
    assert parse_answer("A glioma.", []) == ParsedAnswer("unparseable", None, "no_option")


class _AlwaysOverlaps(frozenset[str]):
    """A hint set that never lets the word prefilter skip a regex."""

    def isdisjoint(self, other: Any) -> bool:
        return False


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    decide.parse_cached.cache_clear()
    yield
    decide.parse_cached.cache_clear()


def test_parse_answer_word_prefilter_changes_no_result(
    monkeypatch: pytest.MonkeyPatch, fresh_cache: None
) -> None:
    texts = [(case["text"], case["options"], case.get("lettered", False)) for _, case in CASES]
    texts += [(t, BRAIN, lettered) for t in _fuzz_texts(7, 200) for lettered in (False, True)]
    expected = [parse_answer(t, o, lettered=lettered) for t, o, lettered in texts]
    monkeypatch.setattr(patterns, "COMMIT_HINTS", _AlwaysOverlaps())
    monkeypatch.setattr(patterns, "CUE_HINTS", _AlwaysOverlaps())
    decide.parse_cached.cache_clear()
    assert [parse_answer(t, o, lettered=lettered) for t, o, lettered in texts] == expected


def test_parse_answer_is_deterministic_across_calls() -> None:
    first = [_parse_case(case) for _, case in CASES]
    assert [_parse_case(case) for _, case in CASES] == first


# The CLI command.


def _write_jsonl(path: Path, records: list[Any]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(parse)
    return app


def test_parse_command_writes_output_keeping_input_fields(tmp_path: Path) -> None:
    source = _write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": 1, "response": "Yes.", "options": ["yes", "no"]},
            {"id": 2, "response": "B", "options": BRAIN, "lettered": True},
            {
                "id": 3,
                "response": "Nevus",
                "options": ["benign", "malignant"],
                "aliases": {"benign": ["nevus"]},
            },
        ],
    )
    parse(source, tmp_path / "out.jsonl")
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["id"], r["status"], r["label"], r["rule"]) for r in out] == [
        (1, "answer", "yes", "leading_yes_no"),
        (2, "answer", "meningioma", "letter"),
        (3, "answer", "benign", "option_text"),
    ]
    assert out[1]["lettered"] is True and out[1]["options"] == BRAIN


def test_parse_command_writes_stdout_through_cli(tmp_path: Path) -> None:
    source = _write_jsonl(
        tmp_path / "in.jsonl", [{"response": "I'm sorry, I can't.", "options": BRAIN}, ""]
    )
    result = CliRunner().invoke(_app(), [str(source)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "label": None,
        "options": BRAIN,
        "response": "I'm sorry, I can't.",
        "rule": "refusal",
        "status": "refusal",
    }


def test_parse_command_reports_every_malformed_line(tmp_path: Path) -> None:
    source = _write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"response": "ok", "options": ["yes", "no"]},
            "{not json",
            {"options": ["yes", "no"]},
            {"response": 3, "options": ["yes", "no"]},
            {"response": "x", "options": "yes"},
            {"response": "x", "options": ["yes", "no"], "lettered": "yes"},
            {"response": "x", "options": ["a"], "aliases": {"b": ["c"]}},
            [1, 2],
        ],
    )
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(_app(), [str(source), "--output", str(out)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{source}:2: invalid JSON: Expecting property name enclosed in double quotes (column 2)",
        f"{source}:3: missing field 'response'",
        f"{source}:4: field 'response': expected a string, got int",
        f"{source}:5: field 'options': expected a list of strings, got \"yes\"",
        f"{source}:6: field 'lettered': expected true or false, got \"yes\"",
        f"{source}:7: field 'aliases': key 'b' is not one of the options ['a']",
        f"{source}:8: expected a JSON object, got list",
    ]
    assert "Traceback" not in result.output
    assert not out.exists()


def test_parse_command_raises_exit_when_called_directly(tmp_path: Path) -> None:
    source = _write_jsonl(tmp_path / "in.jsonl", ["[]"])
    with pytest.raises(typer.Exit) as info:
        parse(source)
    assert info.value.exit_code == 2


def test_parse_command_explain_prints_rule_and_matched_text(tmp_path: Path) -> None:
    source = _write_jsonl(
        tmp_path / "in.jsonl",
        [
            {
                "response": "The chest X-ray shows signs of pneumonia.",
                "options": ["yes", "no"],
                "finding": "pneumonia",
                "aliases": {"yes": ["consolidation"], "no": ["normal"]},
            },
            {"response": "**Answer:** B", "options": BRAIN, "lettered": True},
            "",
            {
                "response": "Without further information, it is impossible to determine the stage.",
                "options": BRAIN,
            },
            {"response": "The image shows a brain MRI.", "options": BRAIN},
            {"response": "It could be a glioma or a meningioma.", "options": BRAIN},
        ],
    )
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(_app(), [str(source), "--explain", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f'{source}:1: answer "yes" by option_text at 31-40: "pneumonia"\n'
        f'{source}:2: answer "meningioma" by final_answer at 2-13: "Answer:** B"\n'
        f'{source}:4: refusal by refusal at 35-58: "impossible to determine"\n'
        f"{source}:5: unparseable by no_option\n"
        f'{source}:6: unparseable by multiple_options at 14-36: "glioma or a meningioma"\n'
    )
    rules = [json.loads(line)["rule"] for line in out.read_text().splitlines()]
    assert rules == ["option_text", "final_answer", "refusal", "no_option", "multiple_options"]


def test_parse_command_explain_shows_the_original_text_of_a_span(tmp_path: Path) -> None:
    source = _write_jsonl(
        tmp_path / "in.jsonl",
        [{"response": "Consistent with a Pituitary Tumour.", "options": BRAIN}],
    )
    result = CliRunner().invoke(_app(), [str(source), "--explain"])
    assert result.stdout == (
        f'{source}:1: answer "pituitary tumor" by option_text at 18-34: "Pituitary Tumour"\n'
    )


def test_parse_command_reads_finding_per_line(tmp_path: Path) -> None:
    source = _write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"response": "There is no evidence of pneumonia.", "options": ["yes", "no"]},
            {
                "response": "There is no evidence of pneumonia.",
                "options": ["yes", "no"],
                "finding": "pneumonia",
            },
        ],
    )
    parse(source, tmp_path / "out.jsonl")
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["status"], r["label"], r["rule"]) for r in out] == [
        ("unparseable", None, "no_option"),
        ("answer", "no", "negated_option"),
    ]


def test_parse_command_rejects_a_finding_that_is_not_a_string(tmp_path: Path) -> None:
    source = _write_jsonl(
        tmp_path / "in.jsonl", [{"response": "x", "options": ["yes", "no"], "finding": ["a"]}]
    )
    result = CliRunner().invoke(_app(), [str(source)])
    assert result.exit_code == 2
    assert result.stderr == f"{source}:1: field 'finding': expected a string, got [\"a\"]\n"


def test_parse_answer_span_is_not_compared() -> None:
    parsed = parse_answer("The image shows a glioma.", BRAIN)
    assert parsed.span == (18, 24)
    assert parsed == ParsedAnswer("answer", "glioma", "option_text")
    assert parsing.matched("The image shows a glioma.", parsed) == "glioma"


def test_parser_version_is_a_positive_integer() -> None:
    assert isinstance(parsing.PARSER_VERSION, int) and parsing.PARSER_VERSION >= 2
