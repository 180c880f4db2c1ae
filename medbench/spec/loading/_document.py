"""A spec file parsed safely: YAML nodes that keep their locations, and plain data."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer, ComposerError, MaxDepthExceededError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from medbench.errors import Issue
from medbench.spec.suite import SPEC_KINDS

MAX_FILE_BYTES = 256 * 1024
"""Files are rejected above this size, before parsing."""
MAX_NODES = 100_000
"""Most YAML nodes a file may hold once aliases are expanded (stops "billion laughs")."""
MAX_DEPTH = 32
"""Most levels of nested mappings and lists below the top level."""
Loc = tuple[str | int, ...]
"""A path into a spec's data, as pydantic reports it: keys and list indices."""


@dataclass
class Document:
    """One spec file on its way through loading."""

    path: Path
    display: str
    sha256: str = ""
    node: Any = None
    data: Any = None
    kind: str | None = None
    spec: Any = None

    def issue(self, loc: Loc, problem: str, hint: str = "", *, at_key: bool = False) -> Issue:
        line, col = locate(self.node, loc, at_key) if self.node is not None else (1, 1)
        return Issue(self.display, line, col, ".".join(str(p) for p in loc), problem, hint)


class _TagFound(Exception):
    """An explicit YAML tag, refused before anything is built from it."""

    def __init__(self, tag: Any, mark: Any) -> None:
        super().__init__(f"{tag.handle or ''}{tag.suffix}")
        self.mark = mark


class _Problem(Exception):
    """A YAML shape specs may not use, at a node."""

    def __init__(self, loc: Loc, node: Any, problem: str, hint: str = "") -> None:
        super().__init__(problem)
        self.loc, self.node, self.problem, self.hint = loc, node, problem, hint


class _Composer(Composer):
    """Builds nodes only, never Python objects, and stops at the first explicit tag."""

    def compose_document(self) -> Any:
        self.depth = 0  # the base class leaves it raised after an error; the instance is reused
        self.warn_double_anchors = False  # legal YAML: the later anchor wins
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if getattr(event, "ctag", None) is not None:
            raise _TagFound(event.ctag, event.start_mark)
        return super().compose_node(parent, index)


def new_yaml() -> YAML:
    """A round-trip loader that composes nodes only and refuses tags; reusable across files."""
    yaml = YAML(typ="rt")
    yaml.Composer = _Composer
    yaml.max_depth = MAX_DEPTH + 1
    return yaml


def read(yaml: YAML, doc: Document) -> Issue | None:
    """Fill `doc.sha256`, `doc.node` and `doc.data`, or return the one problem that stops it."""
    try:
        with doc.path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
        size = doc.path.stat().st_size if len(raw) > MAX_FILE_BYTES else len(raw)
    except OSError as e:
        return Issue(doc.display, 1, 1, "", f"cannot read the file: {e.strerror}.")
    if size > MAX_FILE_BYTES:
        problem = f"the file is {size / 1024:.0f} KiB, over the {MAX_FILE_BYTES // 1024} KiB limit."
        return Issue(
            doc.display, 1, 1, "", problem, "Spec files are short: is this the right file?"
        )
    doc.sha256 = hashlib.sha256(raw).hexdigest()
    return _parse(yaml, doc, raw)


def _parse(yaml: YAML, doc: Document, raw: bytes) -> Issue | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - raw.rfind(b"\n", 0, e.start)
        return Issue(
            doc.display, line, col, "", "the file is not valid UTF-8.", "Save it as UTF-8."
        )
    try:
        doc.node = yaml.compose(io.StringIO(text))
    except _TagFound as e:
        hint = "Specs hold plain data only: remove the tag."
        problem = f"YAML tags are not allowed, got '{e}'."
        return Issue(doc.display, e.mark.line + 1, e.mark.column + 1, "", problem, hint)
    except YAMLError as e:
        return _yaml_issue(doc.display, text, e)
    if doc.node is None:
        hint = f"Write a mapping with `schema_version: 1` and `kind:` ({', '.join(SPEC_KINDS)})."
        return Issue(doc.display, 1, 1, "", "the file is empty.", hint)
    try:
        if _expanded_size(doc.node, {}, set()) > MAX_NODES:
            hint = "Aliases (*name) may not multiply the data; write it out."
            problem = f"too many nodes after alias expansion (over {MAX_NODES})."
            return doc.issue((), problem, hint)
        doc.data = _to_data(doc.node, ())
    except _Problem as e:
        mark = e.node.start_mark
        field = ".".join(str(p) for p in e.loc)
        return Issue(doc.display, mark.line + 1, mark.column + 1, field, e.problem, e.hint)
    if not isinstance(doc.data, dict):
        hint = "A spec is a mapping of `key: value` lines."
        return doc.issue((), f"expected a mapping at the top level, got {show(doc.data)}.", hint)
    return None


def _yaml_issue(display: str, text: str, error: YAMLError) -> Issue:
    if isinstance(error, ReaderError):
        line = text.count("\n", 0, error.position) + 1
        col = error.position - text.rfind("\n", 0, error.position)
        code = error.character if isinstance(error.character, int) else ord(error.character[:1])
        problem = f"invalid YAML: {error.reason} (character U+{code:04X})."
        return Issue(display, line, col, "", problem, "Remove the control character.")
    if not isinstance(error, MarkedYAMLError):
        return Issue(display, 1, 1, "", f"invalid YAML: {error}.")
    mark = error.problem_mark or error.context_mark
    if isinstance(error, MaxDepthExceededError):
        problem = f"nested deeper than {MAX_DEPTH} levels."
        return Issue(display, mark.line + 1, mark.column + 1, "", problem)
    if isinstance(error, ComposerError) and "single document" in str(error.context):
        hint = "Put each spec in its own file."
        return Issue(display, mark.line + 1, mark.column + 1, "", "a second YAML document.", hint)
    problem = f"invalid YAML: {error.problem}"
    if error.context and error.context_mark is not None and error.context_mark.line != mark.line:
        problem += f" ({error.context} started at line {error.context_mark.line + 1})"
    return Issue(display, mark.line + 1, mark.column + 1, "", problem + ".", _hint(text, error))


_INDENT_HINT = (
    "Check the indentation: the keys of one mapping, and the `-` items of one list, start in "
    "the same column (spaces only)."
)


def _hint(text: str, error: MarkedYAMLError) -> str:
    """What usually causes this YAML error, judged from the line it stopped at."""
    message, mark = str(error.problem), error.problem_mark
    lines = text.splitlines()
    at = mark.line if mark is not None else 0
    line = lines[at] if at < len(lines) else ""
    if "'\\t'" in message:
        return "Indent with spaces, not tabs."
    for near in lines[max(0, at - 1) : at + 1]:
        item = near.lstrip()
        if item.startswith("-") and len(item) > 1 and item[1] not in " -0123456789.":
            return "Put a space after the `-` of a list item: `- id: ...`."
    if "mapping values are not allowed" in message:
        before = line[: mark.column] if mark is not None else line
        if ": " in before.lstrip():
            return "A value holding ': ' must be quoted, e.g. `question: \"Pneumonia: present?\"`."
        return _INDENT_HINT
    if "expected <block end>" in message or "could not find expected ':'" in message:
        return _INDENT_HINT
    if "expected ',' or ']'" in message or "expected ',' or '}'" in message:
        return "Close the bracket on the same item, and quote items holding ',' or ': '."
    if "quoted scalar" in str(error.context):
        return "Close the quote, or write the text without quotes."
    return ""


def _children(node: Any) -> Iterable[Any]:
    if isinstance(node, MappingNode):
        return (child for pair in node.value for child in pair)
    return node.value if isinstance(node, SequenceNode) else ()


def _expanded_size(node: Any, memo: dict[int, int], visiting: set[int]) -> int:
    """Node count with every alias expanded, computed without expanding (memoised on the graph)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in visiting:
        raise _Problem(
            (), node, "an alias refers to a node that contains it.", "Remove the recursive alias."
        )
    visiting.add(key)
    total = 1
    for child in _children(node):
        total += _expanded_size(child, memo, visiting)
        if total > MAX_NODES:
            break
    visiting.discard(key)
    memo[key] = total
    return total


def _to_data(node: Any, loc: Loc) -> Any:
    if isinstance(node, SequenceNode):
        return [_to_data(item, (*loc, i)) for i, item in enumerate(node.value)]
    if not isinstance(node, MappingNode):
        value = _scalar(node)
        if isinstance(value, str):
            _check_unicode(value, loc, node)
        return value
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            raise _Problem(loc, key_node, "a key must be a plain name, not a list or a mapping.")
        if str(key_node.tag).endswith(":merge"):
            raise _Problem(
                loc, key_node, "merge keys (<<) are not supported.", "Write the keys out."
            )
        key = key_node.value
        _check_unicode(key, (*loc, key), key_node)
        if key in out:
            raise _Problem((*loc, key), key_node, f"duplicate key '{key}'.", "Keep one of them.")
        out[key] = _to_data(value_node, (*loc, key))
    return out


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_unicode(text: str, loc: Loc, node: Any) -> None:
    found = _SURROGATE.search(text)
    if found is not None:
        code = f"U+{ord(found.group()):04X}"
        hint = "Write the character itself, or a \\U escape of a real code point."
        raise _Problem(loc, node, f"invalid Unicode: a lone surrogate ({code}).", hint)


def _scalar(node: Any) -> Any:
    kind = str(node.tag).rsplit(":", 1)[-1]
    text: str = node.value
    if node.style == ">":
        # ruamel's round-trip composer marks each fold of a folded scalar with a BEL.
        text = text.replace("\a", "")
    try:
        if kind == "null":
            return None
        if kind == "bool":
            return text.lower() == "true"
        if kind == "int":
            digits = text.replace("_", "")
            return int(digits, 0 if digits.lstrip("+-")[:2].lower() in ("0x", "0o", "0b") else 10)
        if kind == "float":
            value = text.replace("_", "").lower().replace(".inf", "inf").replace(".nan", "nan")
            return float(value)
    except ValueError:
        pass
    return text


def locate(root: Any, loc: Loc, at_key: bool) -> tuple[int, int]:
    """1-based line and column of the deepest node of `loc` that exists (of its key if `at_key`)."""
    node, mark = root, root.start_mark
    for part in loc:
        key_mark = child = None
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.value == part:
                    key_mark, child = key_node.start_mark, value_node
        elif (
            isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value)
        ):
            child = node.value[part]
        if child is None:
            break
        node, mark = child, child.start_mark
        empty = isinstance(child, ScalarNode) and child.value == "" and child.style is None
        if key_mark is not None and (at_key or empty):
            mark = key_mark
    return mark.line + 1, mark.column + 1


def show(value: Any) -> str:
    """A value as the user wrote it, in YAML words, for "got ..." messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return f"'{value}'" if len(value) <= 60 else f"'{value[:57]}...'"
    return str(value)
