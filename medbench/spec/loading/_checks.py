"""Checks across fields and files: data paths, remote code, ids, references and pairs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from medbench.errors import Issue
from medbench.spec.loading._document import Document, Loc, locate, show
from medbench.spec.loading._explain import KIND_NAMES, suggest
from medbench.spec.loading._templates import _check_family
from medbench.spec.model import ModelSpec
from medbench.spec.prompt import PromptFamilySpec
from medbench.spec.suite import SuiteSpec
from medbench.spec.task import TaskSpec

DATA_VAR = "${MEDBENCH_DATA}/"
ALLOW_REMOTE_CODE = "allow_remote_code.txt"


def check_raw(doc: Document, root: Path, allowed: set[str]) -> Iterator[Issue]:
    """Checks needing the project root, on the raw data so that they run on invalid specs too."""
    data, kind = doc.data, doc.data.get("kind")
    paths: list[tuple[Loc, Any]] = []
    if kind == "task" and isinstance(data.get("data"), dict):
        paths = [
            (("data", k, "path"), v.get("path"))
            for k, v in data["data"].items()
            if isinstance(v, dict)
        ]
    if kind == "model":
        paths = [(("path",), data.get("path"))]
        if isinstance(data.get("adapter"), dict):
            paths.append((("adapter", "path"), data["adapter"].get("path")))
        if data.get("trust_remote_code") is True and data.get("id") not in allowed:
            problem = f"refused for model {show(data.get('id'))}: not on specs/{ALLOW_REMOTE_CODE}."
            hint = (
                "Remote code runs on every user's machine: a maintainer must allow-list the model."
            )
            yield doc.issue(("trust_remote_code",), problem, hint)
    for loc, value in paths:
        bad = _path_problem(value, root) if isinstance(value, str) else None
        if bad is not None:
            yield doc.issue(loc, bad, f"Write a path inside data/ or starting with {DATA_VAR}.")


def _path_problem(raw: str, root: Path) -> str | None:
    text = raw.strip()
    if text.startswith(DATA_VAR):
        if ".." in PurePosixPath(text[len(DATA_VAR) :]).parts:
            return f"'..' may not follow {DATA_VAR}, got {show(raw)}."
        return None
    if text.startswith("~"):
        return f"home-folder paths are not allowed, got {show(raw)}."
    if (
        PurePosixPath(text).is_absolute()
        or PureWindowsPath(text).is_absolute()
        or PureWindowsPath(text).drive
    ):
        return f"absolute paths are not allowed, got {show(raw)}."
    if "$" in text:
        return f"the only variable allowed is {DATA_VAR} at the start, got {show(raw)}."
    data_root = os.path.join(root, "data")
    resolved = os.path.normpath(os.path.join(root, text))
    if resolved != data_root and not resolved.startswith(data_root + os.sep):
        return f"{show(raw)} resolves outside the data root (data/)."
    real, real_root = os.path.realpath(resolved), os.path.realpath(data_root)
    if real != real_root and not real.startswith(real_root + os.sep):
        return f"{show(raw)} resolves outside the data root (data/) through a symbolic link."
    return None


def check_ids(docs: list[Document]) -> Iterator[Issue]:
    """Ids unique within a kind: each duplicate is reported at every file, naming the others."""
    groups: dict[tuple[str, str], list[Document]] = {}
    for doc in docs:
        if doc.kind is not None and isinstance(doc.data.get("id"), str):
            groups.setdefault((doc.kind, doc.data["id"].strip()), []).append(doc)
    for (kind, spec_id), group in groups.items():
        if len(group) < 2:
            continue
        where = [f"{d.display}:{':'.join(map(str, locate(d.node, ('id',), False)))}" for d in group]
        for doc, here in zip(group, where, strict=True):
            others = ", ".join(w for w in where if w != here)
            problem = f"duplicate {KIND_NAMES[kind]} id '{spec_id}', also defined at {others}."
            yield doc.issue(("id",), problem, "Ids are unique within a kind: rename one.")


def cross_checks(
    valid: dict[str, dict[str, Document]], known: dict[str, set[str]]
) -> Iterator[Issue]:
    """References between specs, and every variant rendered for the tasks it will meet.

    `valid` holds the documents that passed validation, by kind and id; `known` every id
    written in a file of that kind, valid or not, so that a broken task is not also "unknown".
    """
    tasks = {i: d.spec for i, d in valid["task"].items()}
    families = {i: d.spec for i, d in valid["prompt_family"].items()}
    for doc in valid["task"].values():
        yield from _check_task(doc, doc.spec)
    models = {i: d.spec for i, d in valid["model"].items()}
    for doc in valid["model"].values():
        yield from _check_model(doc, doc.spec, known, families, tasks)
        yield from _check_pair(doc, doc.spec, models)
    for doc in valid["suite"].values():
        yield from _check_suite(doc, doc.spec, known, valid)
    suites = [d.spec for d in valid["suite"].values()]
    for doc in valid["prompt_family"].values():
        paired = _paired_tasks(doc.spec.id, suites, tasks)
        lacking = [t for t in paired if t.finding is None] if doc.spec.answer == "yes_no" else []
        # a yes/no family's task without a finding is reported once, at the task
        yield from (_missing_finding(valid["task"][t.id], doc.spec.id) for t in lacking)
        yield from _check_family(doc, doc.spec, [t for t in paired if t not in lacking])


def _missing_finding(doc: Document, family_id: str) -> Issue:
    problem = f"required field is missing: yes/no prompt family '{family_id}' asks this task."
    hint = "Write the positive finding in words, e.g. `finding: pneumonia`."
    return doc.issue(("finding",), problem, hint)


def _unknown(doc: Document, loc: Loc, kind: str, ref: str, known: set[str]) -> Issue:
    name = KIND_NAMES[kind]
    hint = suggest(ref, sorted(known), f"Known {name}s") or f"No {name}s are defined."
    return doc.issue(loc, f"unknown {name} '{ref}'.", hint)


def _check_task(doc: Document, task: TaskSpec) -> Iterator[Issue]:
    labels = [label.id for label in task.labels]
    for source_name, source in task.data.items():
        for folder, label in source.label_map.items():
            if label not in labels:
                problem = f"maps to '{label}', which is not a label of this task."
                loc = ("data", source_name, "label_map", folder)
                yield doc.issue(loc, problem, suggest(label, labels, "Labels"))


def _check_model(
    doc: Document,
    model: ModelSpec,
    known: dict[str, set[str]],
    families: dict[str, PromptFamilySpec],
    tasks: dict[str, TaskSpec],
) -> Iterator[Issue]:
    if model.base is not None and model.base not in known["model"]:
        yield _unknown(doc, ("base",), "model", model.base, known["model"])
    start = model.tiny.init_from if model.tiny else None
    if start is not None and start not in known["model"]:
        yield _unknown(doc, ("tiny", "init_from"), "model", start, known["model"])
    for i, task_id in enumerate(model.tiny.train_tasks if model.tiny else ()):
        if task_id not in known["task"]:
            yield _unknown(doc, ("tiny", "train_tasks", i), "task", task_id, known["task"])
        elif task_id in tasks and "sample" not in tasks[task_id].data:
            problem = f"task '{task_id}' has no `sample` data source to train on."
            hint = "Add `data.sample` to the task, or train on another task."
            yield doc.issue(("tiny", "train_tasks", i), problem, hint)
    for i, ref in enumerate(model.tiny.train_variants if model.tiny else ()):
        family_id, variant_id = ref.split("/")
        loc = ("tiny", "train_variants", i)
        if family_id not in known["prompt_family"]:
            yield _unknown(doc, loc, "prompt_family", family_id, known["prompt_family"])
        elif family_id in families:
            variants = [v.id for v in families[family_id].variants]
            if variant_id not in variants:
                problem = f"prompt family '{family_id}' has no variant '{variant_id}'."
                yield doc.issue(loc, problem, suggest(variant_id, variants, "Its variants"))


def _check_pair(doc: Document, model: ModelSpec, models: dict[str, ModelSpec]) -> Iterator[Issue]:
    """A model and its base are asked the same way: a pair's difference must be its training,
    not where its system prompt went."""
    base = models.get(model.base) if model.base is not None else None
    if base is None:
        return
    # at the setting where the file writes it, else at `base`, which makes the pair
    loc = ("system_prompt",) if "system_prompt" in doc.data else ("base",)
    if model.system_prompt != base.system_prompt:
        problem = (
            f"`system_prompt: {model.system_prompt}` differs from its base '{base.id}' "
            f"(`system_prompt: {base.system_prompt}`)."
        )
        hint = "A pair must place system prompts alike: give both the same setting."
        yield doc.issue(loc, problem, hint)
    elif model.system_prompt == "template" and model.family != base.family:
        problem = (
            f"`system_prompt: template` with a base of another family ('{base.id}' is "
            f"'{base.family}', this is '{model.family}'): their chat templates place a system "
            "prompt differently."
        )
        hint = "Set `system_prompt: fold_into_user` (or `none`) on both models."
        yield doc.issue(loc, problem, hint)
    if model.default_system != base.default_system:
        where = ("default_system",) if "default_system" in doc.data else ("base",)
        problem = f"`default_system` differs from its base '{base.id}'."
        yield doc.issue(where, problem, "A pair must be asked alike: give both the same text.")


def _check_suite(
    doc: Document,
    suite: SuiteSpec,
    known: dict[str, set[str]],
    valid: dict[str, dict[str, Document]],
) -> Iterator[Issue]:
    refs: list[tuple[Loc, str, str]] = [
        ((field, i), kind, ref)
        for field, kind in (
            ("tasks", "task"),
            ("prompt_families", "prompt_family"),
            ("models", "model"),
        )
        for i, ref in enumerate(getattr(suite, field))
    ]
    if suite.describe is not None:
        d = suite.describe
        refs.append((("describe", "family"), "prompt_family", d.family))
        refs.extend((("describe", "diagnosers", i), "model", r) for i, r in enumerate(d.diagnosers))
        refs.extend(
            (("describe", "diagnose_families", i), "prompt_family", r)
            for i, r in enumerate(d.diagnose_families)
        )
    for loc, kind, ref in refs:
        if ref not in known[kind]:
            yield _unknown(doc, loc, kind, ref, known[kind])
            continue
        spec = valid[kind][ref].spec if ref in valid[kind] else None
        problem = _suite_ref_problem(suite, loc, spec)
        if problem is not None:
            yield doc.issue(loc, *problem)
    yield from _per_sample_problems(doc, suite, valid)


PER_SAMPLE_STAGES = {
    "describe": "a description is diagnosed against the task's labels, not a sample's question",
    "probe": "a probe learns one set of classes per task, not an answer per question",
    "likelihood": "option scoring reads the task's labels, not each sample's options",
}
"""Suite stages a task whose samples bring their own question or options cannot meet."""


def _per_sample_problems(
    doc: Document, suite: SuiteSpec, valid: dict[str, dict[str, Document]]
) -> Iterator[Issue]:
    """Closed-VQA tasks (a question or options per sample) in a suite: the stages they cannot
    meet, and yes/no families asked of a multiple-choice task."""
    tasks = [valid["task"][t].spec for t in suite.tasks if t in valid["task"]]
    asking = [t for t in tasks if t.per_sample]
    if not asking:
        return
    for stage, why in PER_SAMPLE_STAGES.items():
        if getattr(suite, stage) is not None:
            problem = f"task '{asking[0].id}' asks a question per sample, and {why}."
            hint = f"Drop `{stage}`, or run the closed-VQA tasks in a suite of their own."
            yield doc.issue((stage,), problem, hint)
    choices = [t.id for t in asking if t.answer_type == "multiple_choice"]
    for i, f in enumerate(suite.prompt_families):
        family = valid["prompt_family"].get(f)
        if choices and family is not None and family.spec.answer == "yes_no":
            problem = f"yes/no family '{f}' cannot ask multiple-choice task '{choices[0]}'."
            yield doc.issue(("prompt_families", i), problem, "Use a family with `answer: label`.")


def _suite_ref_problem(suite: SuiteSpec, loc: Loc, spec: Any) -> tuple[str, str] | None:
    if isinstance(spec, TaskSpec) and suite.data not in spec.data:
        return (
            f"task '{spec.id}' has no `{suite.data}` data source.",
            f"Add `data.{suite.data}` to the task.",
        )
    if loc[:1] != ("describe",):
        return None
    if loc[1] == "family" and isinstance(spec, PromptFamilySpec) and spec.answer != "text":
        hint = "The describe stage asks for a description: use a family with `answer: text`."
        return f"prompt family '{spec.id}' has `answer: {spec.answer}`.", hint
    if (
        loc[1] == "diagnose_families"
        and isinstance(spec, PromptFamilySpec)
        and spec.answer == "text"
    ):
        return (
            f"prompt family '{spec.id}' has `answer: text`.",
            "Diagnose families answer `label` or `yes_no`.",
        )
    if isinstance(spec, ModelSpec) and not spec.text_only:
        hint = "Diagnosers read only the description: use a model with `text_only: true`."
        return f"model '{spec.id}' is not text-only.", hint
    return None


def _paired_tasks(
    family_id: str, suites: list[SuiteSpec], tasks: dict[str, TaskSpec]
) -> list[TaskSpec]:
    """The tasks a family is rendered for: those of the suites naming it, else every task
    with fixed labels (a closed-VQA task meets only the families its suites name)."""
    named = False
    paired: set[str] = set()
    for suite in suites:
        names = set(suite.prompt_families)
        if suite.describe is not None:
            names |= {suite.describe.family, *suite.describe.diagnose_families}
        if family_id in names:
            named = True
            paired.update(suite.tasks)
    if not named:
        return [tasks[i] for i in sorted(tasks) if not tasks[i].per_sample]
    return [tasks[i] for i in sorted(paired) if i in tasks]


def pair_warnings(valid: dict[str, dict[str, Document]]) -> Iterator[tuple[str, Issue]]:
    """(suite id, warning) for each model a suite lists without the `base` it is paired with,
    and each adapter model that names no `base`: the suite runs, but the pair is not compared."""
    for suite_id, doc in valid["suite"].items():
        listed = doc.spec.models
        for i, model_id in enumerate(listed):
            model = valid["model"].get(model_id)
            base = model.spec.base if model is not None else None
            if base is not None and base not in listed:
                problem = (
                    f"model '{model_id}' is paired with its base '{base}', which this suite does "
                    "not list: the pair is not compared."
                )
                yield suite_id, doc.issue(("models", i), problem, f"Add '{base}' to `models`.")
            elif model is not None and base is None and model.spec.adapter is not None:
                problem = (
                    f"model '{model_id}' applies an adapter but names no `base`: it is not "
                    "compared with its weights without the adapter."
                )
                hint = (
                    f"Add a model spec of the same weights without `adapter`, name it in "
                    f"'{model_id}'s `base` and list it here."
                )
                yield suite_id, doc.issue(("models", i), problem, hint)
