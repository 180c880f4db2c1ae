"""Validate a parsed spec with pydantic; word every error for people, at its location."""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from medbench.errors import Issue
from medbench.spec.common import API_KEY_ENV_PATTERN, ID_PATTERN
from medbench.spec.imagevariants import IMAGE_ABLATIONS, IMAGE_TRANSFORMS
from medbench.spec.loading._document import Document, Loc, show
from medbench.spec.suite import SPEC_KINDS

KIND_NAMES = {"task": "task", "prompt_family": "prompt family", "model": "model", "suite": "suite"}
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_BOUNDS = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than_equal": "<=",
    "less_than": "<",
}
# Where a model validator's message (raised with an empty loc) belongs: the field, and for
# duplicates the keys of the items to search for the second occurrence of the quoted value.
_VALIDATOR_FIELDS: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("duplicate label id", "labels", ("id",)),
    ("label name or alias", "labels", ("name", "aliases")),
    ("no label has", "labels", None),
    ("every label is positive", "labels", None),
    ("duplicate variant id", "variants", ("id",)),
    ("reference variant", "reference", None),
    ("backend `", "backend", None),
    ("`baseline` is only", "baseline", None),
    ("a `tiny` model", "tiny", None),
    ("`base` names", "base", None),
    ("tasks lists", "tasks", ()),
    ("prompt_families lists", "prompt_families", ()),
    ("models lists", "models", ()),
    ("image_variants lists", "image_variants", ("id",)),
)
_VARIANT_REF_PATTERN = f"^{ID_PATTERN[1:-1]}/{ID_PATTERN[1:-1]}$"


def validate(doc: Document) -> Iterator[Issue]:
    """Check `kind` and `schema_version`, then validate with the kind's model into `doc.spec`."""
    data = doc.data
    kind, version = data.get("kind"), data.get("schema_version")
    if "kind" not in data:
        yield doc.issue(
            (), "missing required field `kind`.", f"Expected one of: {', '.join(SPEC_KINDS)}."
        )
    elif not isinstance(kind, str) or kind not in SPEC_KINDS:
        hint = suggest(str(kind), list(SPEC_KINDS), "Expected one of")
        yield doc.issue(("kind",), f"unknown kind {show(kind)}.", hint)
    if "schema_version" in data and not (type(version) is int and version == 1):
        hint = "Write `schema_version: 1`, or upgrade medbench for specs written for a newer one."
        yield doc.issue(("schema_version",), f"unsupported schema version {show(version)}.", hint)
        return
    if not isinstance(kind, str) or kind not in SPEC_KINDS:
        return
    doc.kind = kind
    try:
        doc.spec = SPEC_KINDS[kind].model_validate(data)
    except ValidationError as e:
        yield from _pydantic_issues(doc, SPEC_KINDS[kind], e)


def _pydantic_issues(
    doc: Document, cls: type[BaseModel], error: ValidationError
) -> Iterator[Issue]:
    for err in error.errors(include_url=False):
        loc: Loc = tuple(err["loc"])
        value, ctx = err["input"], err.get("ctx") or {}
        if (
            err["type"] == "too_short"
            and isinstance(value, list)
            and len(value) >= ctx["min_length"]
        ):
            continue  # items failed validation: those errors say why
        at_key = loc[-1:] == ("[key]",)
        loc = loc[:-1] if at_key else loc
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, str(ctx.get("discriminator", "")).strip("'"))
        if not loc and err["type"] == "value_error":
            loc = _validator_loc(doc.data, str(ctx.get("error", "")))
        problem, hint = _explain(cls, loc, err)
        loc = _without_tags(cls, loc)
        yield doc.issue(loc, problem, hint, at_key=at_key or err["type"] == "extra_forbidden")


def _explain(cls: type[BaseModel], loc: Loc, err: Any) -> tuple[str, str]:
    kind, value, ctx = err["type"], err["input"], err.get("ctx") or {}
    got = show(value)
    if kind == "missing":
        return "required field is missing.", _description(cls, loc)
    if kind == "extra_forbidden":
        return "unknown field.", suggest(str(loc[-1]), _fields(cls, loc[:-1]), "Allowed fields")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        if kind == "union_tag_not_found":
            names = (*IMAGE_TRANSFORMS, *IMAGE_ABLATIONS) if loc[-1:] == ("transform",) else ()
            return "required field is missing.", suggest("", list(names), "Expected one of")
        return f"unknown {loc[-1]} {show(ctx.get('tag'))}.", suggest(
            str(ctx.get("tag")), tags, "Expected one of"
        )
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", ctx["expected"])
        return f"expected {ctx['expected']}, got {got}.", suggest(str(value), options, "")
    if kind == "string_pattern_mismatch":
        return _pattern_problem(str(ctx["pattern"]), got)
    if kind == "bool_type":
        return f"expected true or false, got {got}.", "Write true or false, unquoted."
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {got}.", ""
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        return f"expected a number {_BOUNDS[kind]} {bound}, got {got}.", ""
    if kind in ("string_too_short", "too_short"):
        if ctx["min_length"] == 1 and kind == "string_too_short":
            return "must not be empty.", ""
        unit = "characters" if kind == "string_too_short" else "items"
        return f"expected at least {ctx['min_length']} {unit}, got {len(value)}.", ""
    if kind in ("string_too_long", "too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        return f"expected at most {ctx['max_length']} {unit}, got {len(value)}.", ""
    if kind == "value_error":
        return str(ctx.get("error", err["msg"])).rstrip(".") + ".", ""
    return f"{err['msg'][:1].lower()}{err['msg'][1:]}, got {got}.", ""


def _pattern_problem(pattern: str, got: str) -> tuple[str, str]:
    if pattern == ID_PATTERN:
        hint = "Ids use a-z, 0-9, '.', '_' and '-', and start with a letter or a digit."
        return f"not a valid id, got {got}.", hint
    if pattern == API_KEY_ENV_PATTERN:
        hint = "Specs may only name OPENAI_API_KEY or a MEDBENCH_<NAME>_API_KEY variable."
        return f"not an allowed key variable, got {got}.", hint
    if pattern == _VARIANT_REF_PATTERN:
        return f"expected `family/variant`, got {got}.", "Name a prompt family and its variant."
    return f"expected text matching {pattern}, got {got}.", ""


def _without_tags(cls: type[BaseModel], loc: Loc) -> Loc:
    """`loc` without the tags pydantic inserts after a discriminated union (the YAML has no
    such key: `image_variants.0.jpeg.quality` is `image_variants.0.quality`)."""
    kept: list[str | int] = []
    current: Any = cls
    for part in loc:
        current = _unwrap(current)
        if get_origin(current) in (Union, types.UnionType):
            members = {_tag(m): m for m in get_args(current)}
            if part in members:
                current = members[part]
                continue
            return (*kept, *loc[len(kept) :])
        kept.append(part)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = field.annotation if field is not None else None
        elif get_origin(current) in (tuple, list):
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            current = None
    return tuple(kept)


def _tag(member: Any) -> Any:
    """The literal `transform`/`kind` value a union member is chosen by, if any."""
    if not (isinstance(member, type) and issubclass(member, BaseModel)):
        return None
    for name in ("transform", "kind"):
        field = member.model_fields.get(name)
        if field is not None and get_origin(field.annotation) is Literal:
            return get_args(field.annotation)[0]
    return None


def _validator_loc(data: dict[str, Any], message: str) -> Loc:
    """Point a model validator's message at the field (and duplicate item) it is about."""
    for prefix, name, keys in _VALIDATOR_FIELDS:
        if not message.startswith(prefix):
            continue
        quoted = re.search(r"'([^']*)'", message)
        items = data.get(name)
        if keys is None or quoted is None or not isinstance(items, list):
            return (name,)
        target, seen = quoted.group(1).strip().lower(), 0
        for i, item in enumerate(items):
            for sub, text in _item_values(item, keys):
                seen += isinstance(text, str) and text.strip().lower() == target
                if seen == 2:
                    return (name, i, *sub)
        return (name,)
    return ()


def _item_values(item: Any, keys: tuple[str, ...]) -> Iterator[tuple[Loc, Any]]:
    if not keys:
        yield (), item
        return
    for key in keys:
        value = item.get(key) if isinstance(item, dict) else None
        if isinstance(value, list):
            yield from (((key, j), v) for j, v in enumerate(value))
        else:
            yield (key,), value


def _model_at(cls: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    current: Any = cls
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = field.annotation if field is not None else None
        elif get_origin(current) in (tuple, list):
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) in (Union, types.UnionType):
            current = {_tag(m): m for m in get_args(current)}.get(part)
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _fields(cls: type[BaseModel], loc: Loc) -> list[str]:
    model = _model_at(cls, loc)
    return list(model.model_fields) if model is not None else []


def _description(cls: type[BaseModel], loc: Loc) -> str:
    model = _model_at(cls, loc[:-1])
    field = model.model_fields.get(str(loc[-1])) if model is not None and loc else None
    return " ".join((field.description or "").split()) if field is not None else ""


def suggest(word: str, candidates: list[str], label: str) -> str:
    """ "Did you mean 'x'?" for a close candidate, else `label: a, b, c.` (nothing if no label)."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if close:
        return f"Did you mean '{close[0]}'?"
    if label and candidates:
        shown = ", ".join(candidates[:12]) + (", ..." if len(candidates) > 12 else "")
        return f"{label}: {shown}."
    return ""
