"""What every spec kind shares: the base model (frozen, `extra="forbid"`), ids, texts and
revisions, each bounded where a stranger's spec could make it large."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
)

SCHEMA_VERSION = 1
ID_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
API_KEY_ENV_PATTERN = r"^(OPENAI_API_KEY|MEDBENCH_[A-Z0-9_]+_API_KEY)$"
"""The environment variables a spec may name as its API key: nothing else is ever read."""

Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=80)]
Text = Annotated[str, Field(min_length=1, max_length=4000)]
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Unicode categories of characters a reader cannot see: controls, formats (zero-width, bidi),
surrogates, private use, unassigned, line and paragraph separators."""


def visible_text(value: str) -> str:
    """`value` in NFKC form (a fullwidth or ligature letter becomes the plain one), refusing a
    character a reader cannot see."""
    text = unicodedata.normalize("NFKC", value)
    for ch in text:
        if unicodedata.category(ch) in _INVISIBLE:
            name = unicodedata.name(ch, "a control character")
            raise ValueError(
                f"holds an invisible character (U+{ord(ch):04X}, {name}); write it in visible "
                "letters only"
            )
    return text


def label_text(value: str) -> str:
    """A name the answer parser matches: visible (`visible_text`) and in one script, so that
    no look-alike letter (a Cyrillic `а` in a Latin word) makes matching answers unparseable."""
    text = visible_text(value)
    scripts = sorted({unicodedata.name(ch, "?").split()[0] for ch in text if ch.isalpha()})
    if len(scripts) > 1:
        raise ValueError(
            f"mixes the scripts {', '.join(scripts)}; write a name in one script (a look-alike "
            "letter makes the answers that name it unparseable)"
        )
    return text


LabelName = Annotated[Text, AfterValidator(label_text)]
"""A class's name or alias: what prompts show and the parser matches."""
VisibleText = Annotated[Text, AfterValidator(visible_text)]
VariantRef = Annotated[
    str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$", max_length=161)
]
"""A variant of a prompt family, written `family/variant`."""
REVISION_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")
"""A branch or tag name (components joined by `/`, none starting with `.`) or a commit sha."""


def check_revision(value: str) -> str:
    """`value` if it is a branch, tag or commit sha; never a path (no `..`, no leading `/`)."""
    if (
        len(value) > 200
        or not REVISION_RE.fullmatch(value)
        or ".." in value
        or value.endswith(".lock")
    ):
        raise ValueError(
            f"not a branch, tag or 40-character commit sha, got {value[:60]!r}; a revision is "
            "never a path"
        )
    return value


Revision = Annotated[str, AfterValidator(check_revision)]
REPO_PATTERN = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"
"""A Hugging Face repository id, `owner/name`."""


class _Spec(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        str_strip_whitespace=True,
    )


Seed = Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]


def _absent(value: object) -> bool:
    """Fields added after records were published are left out of dumps while unset, so that
    the dump (records, remembered batch sizes) of a spec not using them stays as it was."""
    return value is None
