"""Fuzzing spec YAML and record JSON: whatever a stranger sends, the answer is located errors,
never a traceback. Bounded: a fixed number of examples, each well under a second."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medbench.errors import SpecError
from medbench.publish.verify import verify_records
from medbench.spec.loading import load_specs
from tests.spec.test_loading import VALID_TREE, write_tree

CASES = Path(__file__).resolve().parent / "cases"
RECORD = CASES / "broken_records" / "06_spec_hash_not_a_spec" / "leaderboard" / "quickstart"
FUZZ = settings(
    max_examples=int(os.environ.get("MEDBENCH_FUZZ_EXAMPLES", "50")),
    deadline=None,
    derandomize=os.environ.get("CI") == "true",  # reproducible in CI, new inputs elsewhere
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

NASTY_TEXT = st.sampled_from(
    [
        "",
        "true",
        "yes",
        "on",
        "1",
        "../../../x",
        "/etc/passwd",
        "~/.ssh/id_rsa",
        "a\x00b",
        "\ud800",
        "${MEDBENCH_DATA}/../x",
        "{{ ''.__class__ }}",
        "{{ question|center(10**8) }}",
        "{% for i in range(10**5) %}{% for j in range(10**5) %}{% endfor %}{% endfor %}",
        "NaN",
        "x" * 5000,
        "HF_TOKEN",
        "https://attacker.example/v1",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    NASTY_TEXT,
    st.text(max_size=40),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@contextmanager
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="medbench-fuzz-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _yaml(value: Any) -> str:
    """A value as YAML flow text (JSON is YAML, except lone surrogates and non-finite floats)."""
    return json.dumps(value, ensure_ascii=True).replace("NaN", ".nan").replace("Infinity", ".inf")


def _replace_line(text: str, index: int, value: Any) -> str:
    lines = text.splitlines()
    i = index % len(lines)
    key, colon, _ = lines[i].partition(":")
    lines[i] = f"{key}: {_yaml(value)}" if colon else _yaml(value)
    return "\n".join(lines) + "\n"


@FUZZ
@given(
    name=st.sampled_from(sorted(VALID_TREE)),
    index=st.integers(min_value=0, max_value=40),
    value=VALUES,
)
def test_fuzz_spec_with_a_changed_value_loads_or_reports_located_errors(
    name: str, index: int, value: Any
) -> None:
    with folder() as root:
        specs = write_tree(root, {name: _replace_line(VALID_TREE[name], index, value)})
        try:
            load_specs(specs)
        except SpecError as e:
            assert all(issue.line >= 1 and issue.col >= 1 for issue in e.issues)


@FUZZ
@given(text=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_fuzz_spec_of_arbitrary_text_never_raises_anything_else(text: str) -> None:
    with folder() as root:
        specs = write_tree(root)
        (specs / "models" / "fuzz.yaml").write_bytes(text.encode("utf-8", "surrogatepass"))
        with suppress(SpecError):
            load_specs(specs)


def _mutate(data: Any, path: list[int], value: Any) -> Any:
    """`data` with the node chosen by `path` (indices into keys or items) replaced by `value`."""
    if not path or not isinstance(data, dict | list) or not data:
        return value
    if isinstance(data, dict):
        key = sorted(data)[path[0] % len(data)]
        return {**data, key: _mutate(data[key], path[1:], value)}
    i = path[0] % len(data)
    return [*data[:i], _mutate(data[i], path[1:], value), *data[i + 1 :]]


@FUZZ
@given(
    path=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=4),
    value=VALUES,
    key=st.one_of(st.none(), NASTY_TEXT),
)
def test_fuzz_record_with_a_changed_value_verifies_to_messages(
    path: list[int], value: Any, key: str | None
) -> None:
    data = json.loads((RECORD / "tiny.json").read_text(encoding="utf-8"))
    data["spec_hashes"] = {"model/tiny": "a" * 64}
    data = _mutate(data, path, value)
    if key is not None and isinstance(data, dict):
        data["tasks"] = {key: {"title": "t", "modality": "m", "difficulty": 1}}
    with folder() as root:
        board = root / "leaderboard" / "quickstart"
        board.mkdir(parents=True)
        text = json.dumps(data, ensure_ascii=False, allow_nan=True)
        (board / "tiny.json").write_bytes(text.encode("utf-8", "surrogatepass"))
        problems = verify_records(root / "leaderboard")
    assert all(isinstance(p, str) and p for p in problems)


@FUZZ
@given(raw=st.binary(max_size=400))
def test_fuzz_record_of_arbitrary_bytes_verifies_to_messages(raw: bytes) -> None:
    with folder() as root:
        board = root / "leaderboard" / "quickstart"
        board.mkdir(parents=True)
        (board / "tiny.json").write_bytes(raw)
        problems = verify_records(root / "leaderboard")
    assert problems and all(isinstance(p, str) and "tiny.json" in p for p in problems)
