"""Tests of medbench.checkpoints.tiny.train: demonstration models fine-tuned on the sample images.

The slow tests train the shipped quickstart pair with the shipped settings and measure what the
quickstart shows: answers that parse on the trained wording, drift on the others, and a
specialised model less fragile than its base.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from medbench.checkpoints.tiny import MARKER, TRAIN_RECIPE_VERSION, ensure_tiny_model, training_data
from medbench.checkpoints.tiny import build as tiny_build
from medbench.data.samples import load_samples
from medbench.errors import BackendError
from medbench.run.backends.base import BackendContext, Request
from medbench.run.identity import resolve_identity, tiny_checkpoint_dir
from medbench.run.tinydata import training_examples
from medbench.score.parsing import parse_answer
from medbench.spec.loading import SpecSet, load_specs
from medbench.spec.model import ModelSpec, TinySpec
from medbench.spec.prompts import ImageRef, render

REPO = Path(__file__).resolve().parents[2]
GENERAL, MED = "tiny-gemma3-general", "tiny-gemma3-med"
SAMPLE_IMAGES = 176
"""Sample images of the four tasks (16 per class)."""


@pytest.fixture(scope="module")
def specs() -> SpecSet:
    return load_specs(REPO / "specs")


def with_tiny(specs: SpecSet, model_id: str, **changes: Any) -> SpecSet:
    """The spec set with one model's `tiny` block changed."""
    model = specs.models[model_id]
    assert model.tiny is not None
    tiny = TinySpec.model_validate({**model.tiny.model_dump(), **changes})
    return replace(
        specs, models={**specs.models, model_id: model.model_copy(update={"tiny": tiny})}
    )


def folder_of(root: Path) -> Any:
    return lambda model, data: tiny_checkpoint_dir(model, root, data)


def test_training_examples_ask_every_sample_image_in_each_variant(specs: SpecSet) -> None:
    tiny = specs.models[GENERAL].tiny
    assert tiny is not None
    examples = training_examples(specs, tiny)
    assert len(examples) == SAMPLE_IMAGES * len(tiny.train_variants)
    closed, finding = examples[:SAMPLE_IMAGES], examples[SAMPLE_IMAGES:]
    names = {label.name for t in tiny.train_tasks for label in specs.tasks[t].labels}
    assert {e.target for e in closed} == names
    assert {e.target for e in finding} == {"yes", "no"}
    assert all(len(e.messages.images) == 1 for e in examples)
    first = closed[0]
    assert first.messages.text.startswith("What does this brain MRI show? Answer with one of:")
    assert first.target == "glioma"


def test_training_examples_refuse_a_lettered_variant(specs: SpecSet) -> None:
    tiny = TinySpec(
        arch="gemma3",
        train=True,
        train_tasks=("pneumonia_cxr",),
        train_variants=("closed_diagnosis/lettered",),
    )
    message = (
        "train variant closed_diagnosis/lettered: its answers are letters or free text; train "
        "on variants answered with a label's name or yes/no"
    )
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        training_examples(specs, tiny)


def test_tiny_spec_training_fields_are_checked_together() -> None:
    with pytest.raises(ValueError, match=r"`train: true` needs `train_variants`"):
        TinySpec(arch="gemma3", train=True)
    with pytest.raises(ValueError, match=r"`train: true` needs `train_tasks`"):
        TinySpec(arch="gemma3", train=True, train_variants=("closed_diagnosis/plain",))
    with pytest.raises(ValueError, match=r"`train_tasks` needs `train: true`"):
        TinySpec(arch="gemma3", train_tasks=("pneumonia_cxr",))
    with pytest.raises(ValueError, match=r"`init_from` needs `train: true`"):
        TinySpec(arch="gemma3", init_from="tiny-gemma3-general")


def test_training_data_starts_from_the_init_from_model(specs: SpecSet, tmp_path: Path) -> None:
    data = training_data(specs, specs.models[MED], folder_of(tmp_path))
    assert data.start is not None
    assert data.start.spec == specs.models[GENERAL].tiny
    assert data.start.folder == tiny_checkpoint_dir(
        specs.models[GENERAL], tmp_path, data.start.training
    )
    assert data.start.training.start is None
    assert len(data.examples) == SAMPLE_IMAGES * 11
    payload = data.payload()
    assert payload["recipe"] == TRAIN_RECIPE_VERSION
    assert payload["start"]["training"] == data.start.training.payload()


def test_training_data_refuses_an_init_from_loop(specs: SpecSet, tmp_path: Path) -> None:
    looped = with_tiny(specs, GENERAL, init_from=MED)
    message = f"model {MED}: `init_from` loops: {MED} -> {GENERAL} -> {MED}"
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        training_data(looped, looped.models[MED], folder_of(tmp_path))


def test_training_data_refuses_an_untrained_start(specs: SpecSet, tmp_path: Path) -> None:
    odd = with_tiny(specs, MED, init_from="tiny-gemma3")
    message = f"model {MED}: `init_from: tiny-gemma3` must name a trained tiny gemma3 model"
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        training_data(odd, odd.models[MED], folder_of(tmp_path))


def weights(specs: SpecSet, model_id: str, root: Path) -> Any:
    return resolve_identity(specs.models[model_id], specs.root, root, specs=specs).payload[
        "weights"
    ]


def test_identity_of_a_trained_model_holds_its_data_and_its_start(
    specs: SpecSet, tmp_path: Path
) -> None:
    base = weights(specs, MED, tmp_path)
    assert base["training"]["start"]["tiny"]["steps"] == 300
    # What the start model learns changes the specialised model's weights, hence its identity.
    assert weights(with_tiny(specs, GENERAL, steps=299), MED, tmp_path) != base
    assert weights(with_tiny(specs, GENERAL, lr=0.002), MED, tmp_path) != base
    family = specs.families["closed_diagnosis"]
    variants = tuple(
        v.model_copy(update={"template": v.template + " Be brief."}) if v.id == "plain" else v
        for v in family.variants
    )
    reworded = replace(
        specs,
        families={**specs.families, family.id: family.model_copy(update={"variants": variants})},
    )
    assert weights(reworded, MED, tmp_path)["training"]["start"] != base["training"]["start"]
    assert weights(specs, MED, tmp_path) == base


def test_identity_of_a_trained_model_needs_the_spec_set(specs: SpecSet, tmp_path: Path) -> None:
    message = (
        f"model {GENERAL}: a trained tiny model's identity needs the spec set (its training "
        "data): pass `specs=` to resolve_identity"
    )
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        resolve_identity(specs.models[GENERAL], specs.root, tmp_path)


def test_ensure_tiny_model_needs_the_training_data(tmp_path: Path) -> None:
    spec = TinySpec(
        arch="gemma3",
        train=True,
        train_tasks=("pneumonia_cxr",),
        train_variants=("closed_diagnosis/plain",),
    )
    message = (
        "a trained tiny model needs its training data: resolve the model's identity with the "
        "spec set and pass `training=identity.training`"
    )
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        ensure_tiny_model(spec, tmp_path / "trained")
    assert list(tmp_path.iterdir()) == []


def ensure(specs: SpecSet, model_id: str, root: Path) -> Path:
    model = specs.models[model_id]
    identity = resolve_identity(model, specs.root, root, specs=specs)
    assert model.tiny is not None and identity.checkpoint_dir is not None
    return ensure_tiny_model(model.tiny, identity.checkpoint_dir, training=identity.training)


def test_ensure_trains_the_start_model_first_and_once(
    specs: SpecSet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_models_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    short = with_tiny(with_tiny(specs, GENERAL, steps=3), MED, steps=2)
    folder = ensure(short, MED, tmp_path)
    # each fine-tuning shows its steps on stderr (one line each where it is not a terminal)
    shown = [line.split() for line in capsys.readouterr().err.splitlines()]
    done = [words[3] for words in shown if words[:2] == ["✓", "fine-tuning"]]
    assert done == ["3/3", "2/2"]  # the start model first
    identity = resolve_identity(short.models[GENERAL], short.root, tmp_path, specs=short)
    general = identity.checkpoint_dir
    assert general is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([folder.name, general.name])
    marker = json.loads((folder / MARKER).read_text())
    assert marker["log"]["steps"] == 2
    assert marker["training"]["start"]["tiny"]["steps"] == 3
    assert json.loads((general / MARKER).read_text())["log"]["steps"] == 3

    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("trained again")

    monkeypatch.setattr(tiny_build, "train_tiny_model", fail)
    assert ensure(short, MED, tmp_path) == folder


def test_training_is_byte_identical_for_a_seed(
    specs: SpecSet, tmp_path: Path, tiny_models_dir: Path
) -> None:
    short = with_tiny(specs, GENERAL, steps=20)
    first = ensure(short, GENERAL, tmp_path / "a")
    second = ensure(short, GENERAL, tmp_path / "b")
    other = ensure(with_tiny(short, GENERAL, seed=1), GENERAL, tmp_path / "c")
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    weights_file = "model.safetensors"
    assert (first / weights_file).read_bytes() != (other / weights_file).read_bytes()


# The shipped pair, trained once with the shipped settings, answering every sample image.


@pytest.fixture(scope="module")
def shipped(specs: SpecSet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("trained")
    return {model_id: ensure(specs, model_id, root) for model_id in (GENERAL, MED)}


Answers = dict[str, dict[str, list[str]]]
"""family -> variant -> answers (a label name, yes/no, refusal or unparseable), task by task."""


def answers(specs: SpecSet, model: ModelSpec, folder: Path) -> tuple[Answers, Answers]:
    """Every sample image asked in every variant: parsed answers and the true answers."""
    from medbench.run.backends.hf import HFBackend

    assert model.tiny is not None
    backend = HFBackend(model, BackendContext(device="cpu", batch_size=16, checkpoint_dir=folder))
    parsed: Answers = {}
    truth: Answers = {}
    try:
        for family in (specs.families["closed_diagnosis"], specs.families["finding_present"]):
            for task in (specs.tasks[t] for t in sorted(model.tiny.train_tasks)):
                samples = load_samples(task, "sample", specs.root)
                aliases = {label.name: label.aliases for label in task.labels}
                for variant in family.variants:
                    rendered = [
                        render(family, variant, task, (ImageRef(str(s.path), s.sha256),))
                        for s in samples
                    ]
                    outputs = backend.generate(
                        [Request(str(i), r.messages) for i, r in enumerate(rendered)]
                    )
                    for r, s, out in zip(rendered, samples, outputs, strict=True):
                        label = next(x for x in task.labels if x.id == s.label)
                        right = label.name
                        if family.answer == "yes_no":
                            right = "yes" if label.positive else "no"
                        got = parse_answer(
                            out.text or "",
                            r.options,
                            lettered=r.lettered,
                            aliases=aliases if family.answer == "label" else None,
                        )
                        answer = got.label if got.status == "answer" else got.status
                        parsed.setdefault(family.id, {}).setdefault(variant.id, []).append(
                            str(answer)
                        )
                        truth.setdefault(family.id, {}).setdefault(variant.id, []).append(right)
    finally:
        backend.close()
    return parsed, truth


def share(values: list[bool]) -> float:
    return sum(values) / len(values)


def disagreement(by_variant: dict[str, list[str]]) -> float:
    """Mean over variant pairs of the share of images answered differently."""
    pairs = list(itertools.combinations(sorted(by_variant), 2))
    return sum(
        share([a != b for a, b in zip(by_variant[x], by_variant[y], strict=True)]) for x, y in pairs
    ) / len(pairs)


@pytest.mark.slow
def test_trained_general_model_learns_its_wording_and_drifts_on_others(
    specs: SpecSet, shipped: dict[str, Path]
) -> None:
    log = json.loads((shipped[GENERAL] / MARKER).read_text())["log"]
    assert log["steps"] == 300
    assert log["loss_curve"][-1] < log["loss_curve"][0] / 10
    parsed, truth = answers(specs, specs.models[GENERAL], shipped[GENERAL])
    closed = parsed["closed_diagnosis"]
    invalid = {"refusal", "unparseable"}
    # Measured on the 176 sample images: 100% of the answers to the trained wording are a
    # label, 70% the right one (chance is 25-50%).
    assert share([a not in invalid for a in closed["plain"]]) >= 0.9
    assert (
        share(
            [
                a == t
                for a, t in zip(closed["plain"], truth["closed_diagnosis"]["plain"], strict=True)
            ]
        )
        >= 0.5
    )
    # Measured: 18% (guided) and 7% (terse) of the answers are a label; disagreement 0.61
    # (closed diagnosis) and 0.42 (yes/no).
    assert share([a not in invalid for a in closed["guided"]]) < 0.5
    assert disagreement(closed) > 0.3
    assert disagreement(parsed["finding_present"]) > 0.1


@pytest.mark.slow
def test_trained_specialised_model_is_less_fragile_than_its_base(
    specs: SpecSet, shipped: dict[str, Path]
) -> None:
    general, _ = answers(specs, specs.models[GENERAL], shipped[GENERAL])
    med, truth = answers(specs, specs.models[MED], shipped[MED])
    for family in ("closed_diagnosis", "finding_present"):
        # Measured: closed diagnosis 0.61 -> 0.12, yes/no 0.42 -> 0.05.
        assert disagreement(med[family]) < disagreement(general[family]) / 2
    closed, right = med["closed_diagnosis"], truth["closed_diagnosis"]
    assert share([a == t for a, t in zip(closed["guided"], right["guided"], strict=True)]) > 0.6


@pytest.mark.slow
def test_trained_general_model_prefers_the_right_option_on_wordings_it_was_not_trained_on(
    specs: SpecSet, shipped: dict[str, Path]
) -> None:
    """The knowledge ladder's likelihood rung: on pneumonia, the general model's option
    likelihoods answer the untrained wordings better than its generated answers do."""
    from medbench.run.backends.hf import HFBackend
    from medbench.run.backends.hf.likelihood import OptionScorer
    from medbench.score.metrics import f1_all

    model, task = specs.models[GENERAL], specs.tasks["pneumonia_cxr"]
    family = specs.families["closed_diagnosis"]
    samples = load_samples(task, "sample", specs.root)
    names = [label.name for label in task.labels]
    truth = [[label.id for label in task.labels].index(s.label) for s in samples]
    aliases = {label.name: label.aliases for label in task.labels}
    untrained = [v for v in family.variants if v.id != "plain" and not v.lettered]
    context = BackendContext(device="cpu", batch_size=16, checkpoint_dir=shipped[GENERAL])
    backend = HFBackend(model, context)
    generated: list[float] = []
    likelihood: list[float] = []
    try:
        for variant in untrained:
            rendered = [
                render(family, variant, task, (ImageRef(str(s.path), s.sha256),)) for s in samples
            ]
            requests = [Request(str(i), r.messages, r.options) for i, r in enumerate(rendered)]
            said = []
            for r, out in zip(rendered, backend.generate(requests), strict=True):
                got = parse_answer(out.text or "", r.options, aliases=aliases)
                said.append(names.index(str(got.label)) if got.status == "answer" else -1)
            best = []
            for r, scores in zip(rendered, OptionScorer(backend).score(requests), strict=True):
                assert scores.error is None
                option = max(range(len(r.options)), key=lambda i: scores.total[i])
                best.append(names.index(r.options[option]))
            generated.append(f1_all(truth, said, len(names)))
            likelihood.append(f1_all(truth, best, len(names)))
    finally:
        backend.close()
    # Measured on the 32 pneumonia sample images over the 5 untrained wordings: generated
    # f1_all 0.40 mean (0.00 on guided, report and terse), likelihood 0.87.
    assert sum(likelihood) / len(likelihood) > sum(generated) / len(generated) + 0.2


# Training reads only the tasks the spec names: a new task changes no demo model.

NEW_TASK = """\
schema_version: 1
kind: task
id: new_task
title: A contributor's new task
modality: chest X-ray
difficulty: 3
question: Does this chest X-ray show pneumonia?
labels:
  - {id: pneumonia, name: consolidation, positive: true}
  - {id: normal, name: clear}
data:
  sample: {format: imagefolder, path: data/sample/new_task}
"""


def project_with_new_task(tmp_path: Path) -> Path:
    """The repository's specs and sample, plus a new task's sample holding a bad image."""
    import shutil

    project = tmp_path / "project"
    shutil.copytree(REPO / "specs", project / "specs")
    shutil.copytree(REPO / "data" / "sample", project / "data" / "sample")
    shutil.copytree(
        REPO / "data" / "sample" / "pneumonia_cxr", project / "data" / "sample" / "new_task"
    )
    (project / "data/sample/new_task/normal/broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return project


def add_new_task(project: Path) -> None:
    (project / "specs/tasks/new_task.yaml").write_text(NEW_TASK)


def test_training_examples_read_only_the_train_tasks(specs: SpecSet, tmp_path: Path) -> None:
    project = project_with_new_task(tmp_path)
    add_new_task(project)
    grown = load_specs(project / "specs")
    tiny = grown.models[GENERAL].tiny
    assert tiny is not None and "new_task" in grown.tasks
    examples = training_examples(grown, tiny)
    assert len(examples) == SAMPLE_IMAGES * len(tiny.train_variants)
    before = training_data(specs, specs.models[MED], folder_of(tmp_path)).payload()
    after = training_data(grown, grown.models[MED], folder_of(tmp_path)).payload()
    assert after == before


def test_plan_after_adding_a_task_computes_no_quickstart_answer(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medbench.cli import app
    from medbench.home import models_dir
    from medbench.run.cache import Cache
    from medbench.run.plan import make_plan

    project = project_with_new_task(tmp_path)
    cache_path = tmp_path / "warm.sqlite"
    with Cache(cache_path) as cache:  # a warm cache: every planned answer of the quickstart
        plan = make_plan(
            load_specs(project / "specs"),
            "quickstart",
            models_dir=models_dir(),
            hasher=cache.hash_file,
        )
        cache.put_many(
            (j.key, j.model, j.task, j.family, j.variant, j.sample, "{}", "x", None, 0.0)
            for j in plan.jobs
        )
    add_new_task(project)
    command = ["plan", str(project / "specs"), "--suite", "quickstart", "--cache", str(cache_path)]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert result.output.endswith(f"{len(plan.jobs)} cached; 0 distinct answers to compute.\n")
