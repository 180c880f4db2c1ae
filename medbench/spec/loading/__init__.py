"""Load spec files: YAML to validated, cross-checked specs; problems located at `file:line:col`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ruamel.yaml import YAML

from medbench.errors import Issue, SpecError, UnknownIdError, UsageError
from medbench.spec.loading._checks import (
    ALLOW_REMOTE_CODE,
    check_ids,
    check_raw,
    cross_checks,
    pair_warnings,
)
from medbench.spec.loading._document import MAX_FILE_BYTES, MAX_NODES, Document, new_yaml, read
from medbench.spec.loading._explain import KIND_NAMES, suggest, validate
from medbench.spec.model import ModelSpec
from medbench.spec.prompt import PromptFamilySpec
from medbench.spec.suite import SPEC_KINDS, SuiteSpec
from medbench.spec.task import TaskSpec

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "SpecFile",
    "SpecSet",
    "Document",
    "new_yaml",
    "read",
    "load_specs",
    "suggest",
]

S = TypeVar("S")


@dataclass(frozen=True)
class SpecFile:
    """Where a spec came from: its path relative to the project root and the sha256 of its bytes."""

    path: Path
    sha256: str


@dataclass(frozen=True)
class SpecSet:
    """Every spec of a folder, validated and cross-checked, by id."""

    tasks: dict[str, TaskSpec]
    families: dict[str, PromptFamilySpec]
    models: dict[str, ModelSpec]
    suites: dict[str, SuiteSpec]
    files: dict[tuple[str, str], SpecFile]
    """(kind, id) -> the file that defines it."""
    root: Path
    """The project root: relative data paths resolve against it."""
    source: Path
    """The folder or file given to `load_specs`."""
    warnings: dict[str, tuple[Issue, ...]] = field(default_factory=dict)
    """Suite id -> what runs but is probably not meant (a paired model without its base)."""

    @property
    def data_root(self) -> Path:
        """`<root>/data`: relative data paths must stay inside it."""
        return self.root / "data"

    def task(self, task_id: str) -> TaskSpec:
        return self._get(self.tasks, "task", task_id)

    def family(self, family_id: str) -> PromptFamilySpec:
        return self._get(self.families, "prompt_family", family_id)

    def model(self, model_id: str) -> ModelSpec:
        return self._get(self.models, "model", model_id)

    def suite(self, suite_id: str) -> SuiteSpec:
        return self._get(self.suites, "suite", suite_id)

    def issue(
        self, kind: str, spec_id: str, loc: tuple[str | int, ...], problem: str, hint: str = ""
    ) -> Issue:
        """A problem found after loading, located at `loc` in the file that defines the spec
        (read again for its line and column; 1, 1 where the file is gone or changed)."""
        spec_file = self.files[(kind, spec_id)]
        doc = Document(self.root / spec_file.path, spec_file.path.as_posix())
        if read(new_yaml(), doc) is not None:
            doc.node = None
        return doc.issue(loc, problem, hint)

    def _get(self, table: dict[str, S], kind: str, spec_id: str) -> S:
        if spec_id in table:
            return table[spec_id]
        shown = _display(self.source) + ("/" if self.source.is_dir() else "")
        raise UnknownIdError(KIND_NAMES[kind], spec_id, sorted(table), f"in {shown}")


def load_specs(path: Path) -> SpecSet:
    """Load, validate and cross-check every spec under `path`; raise one SpecError with all."""
    files = _discover(path)
    root = _project_root(path)
    allowed = _allow_list(root / "specs" / ALLOW_REMOTE_CODE)
    issues: list[Issue] = []
    yaml = new_yaml()
    docs = [_load_file(yaml, file, root, allowed, issues) for file in files]
    issues.extend(check_ids(docs))
    valid: dict[str, dict[str, Document]] = {kind: {} for kind in SPEC_KINDS}
    known: dict[str, set[str]] = {kind: set() for kind in SPEC_KINDS}
    for doc in docs:
        if doc.kind is not None and isinstance(doc.data.get("id"), str):
            known[doc.kind].add(doc.data["id"].strip())
        if doc.kind is not None and doc.spec is not None:
            valid[doc.kind].setdefault(doc.spec.id, doc)
    issues.extend(cross_checks(valid, known))
    if issues:
        raise SpecError(issues)
    specs = {kind: {i: doc.spec for i, doc in table.items()} for kind, table in valid.items()}
    warnings: dict[str, tuple[Issue, ...]] = {}
    for suite_id, warning in pair_warnings(valid):
        warnings[suite_id] = (*warnings.get(suite_id, ()), warning)
    return SpecSet(
        tasks=specs["task"],
        families=specs["prompt_family"],
        models=specs["model"],
        suites=specs["suite"],
        files={
            (k, i): SpecFile(_relative(d.path, root), d.sha256)
            for k, t in valid.items()
            for i, d in t.items()
        },
        root=root,
        source=path,
        warnings=warnings,
    )


_GIVE_SPECS = "Give the spec folder (specs/ in the project) or a spec file."


def _discover(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UsageError(f"no such file or folder. {_GIVE_SPECS}", _display(path))
    files = sorted(
        p
        for p in path.rglob("*")
        if p.suffix in (".yaml", ".yml")
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
        and p.is_file()
    )
    if not files:
        raise UsageError(
            f"no spec files (*.yaml, *.yml) in this folder. {_GIVE_SPECS}", _display(path)
        )
    return files


def _project_root(path: Path) -> Path:
    absolute = Path(os.path.abspath(path))
    folder = absolute if absolute.is_dir() else absolute.parent
    for candidate in (folder, *folder.parents):
        if candidate.name == "specs":
            return candidate.parent
    return folder.parent


def _allow_list(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line.split("#", 1)[0].strip() for line in lines} - {""}


def _display(path: Path) -> str:
    if path.is_absolute():
        try:
            return path.relative_to(Path.cwd()).as_posix()
        except ValueError:
            return str(path)
    return path.as_posix()


def _relative(path: Path, root: Path) -> Path:
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(root)
    except ValueError:
        return absolute


def _load_file(
    yaml: YAML, path: Path, root: Path, allowed: set[str], issues: list[Issue]
) -> Document:
    doc = Document(path, _display(path))
    stop = read(yaml, doc)
    if stop is not None:
        issues.append(stop)
        return doc
    issues.extend(validate(doc))
    issues.extend(check_raw(doc, root, allowed))
    return doc
