import shutil
from pathlib import Path

import pytest

from medbench.errors import UnknownIdError
from medbench.run.cache import content_key
from medbench.run.plan import Plan, limit_samples, make_plan
from medbench.spec.loading import load_specs
from tests.spec_tree import make_project


def _plan(project: Path, **kwargs: object) -> Plan:
    return make_plan(load_specs(project / "specs"), "t", models_dir=project / "models", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path, models=("baseline-chance", "tiny-llava"))


def test_make_plan_expands_every_axis_in_sorted_order(project: Path) -> None:
    plan = _plan(project)
    # 2 models x 1 task x 8 variants x 4 images (2 per class)
    assert len(plan.jobs) == 2 * 8 * 4
    order = [(j.model, j.task, j.family, j.variant, j.sample) for j in plan.jobs]
    assert order == sorted(order)
    assert [j.key for j in _plan(project).jobs] == [j.key for j in plan.jobs]


def test_plan_key_is_the_content_key_of_the_job_payload(project: Path) -> None:
    plan = _plan(project)
    job = next(j for j in plan.jobs if j.model == "tiny-llava")
    request = plan.request(job)
    payload = {
        "model": plan.identities["tiny-llava"].payload,
        "messages": request.messages.key_payload(),
    }
    assert job.key == content_key(payload)


def test_plan_keys_ignore_paths_and_ids_but_not_image_bytes(project: Path, tmp_path: Path) -> None:
    before = {(j.model, j.variant, j.sample): j.key for j in _plan(project).jobs}
    moved = tmp_path / "moved"
    shutil.copytree(project, moved)
    shutil.rmtree(project)
    assert {(j.model, j.variant, j.sample): j.key for j in _plan(moved).jobs} == before
    sample = _plan(moved).samples["pneumonia_cxr"][0]
    image = sample.path
    image.write_bytes(image.read_bytes() + b"\0")
    after = {(j.model, j.variant, j.sample): j.key for j in _plan(moved).jobs}
    changed = {k[2] for k in before if before[k] != after[k]}
    assert changed == {sample.id}


def test_plan_variants_rendering_the_same_messages_share_one_key(project: Path) -> None:
    plan = _plan(project)
    # `plain` and `persona` differ (system prompt); `plain` and `reversed` differ (order);
    # a copy of `plain` under another id renders the same messages: the same key.
    family = project / "specs/prompts/closed_diagnosis.yaml"
    text = family.read_text()
    family.write_text(
        text + "  - id: plain-copy\n    kind: wording\n"
        "    template: \"{{ question }} Answer with one of: {{ options | join(', ') }}.\"\n"
    )
    plan = _plan(project)
    keys = {(j.model, j.variant, j.sample): j.key for j in plan.jobs}
    for (model, variant, sample), key in keys.items():
        if variant == "plain":
            assert keys[(model, "plain-copy", sample)] == key
            assert keys[(model, "persona", sample)] != key


VICUNA_V1 = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the user's questions."
)


def test_plan_default_system_is_sent_where_a_variant_has_none(project: Path) -> None:
    before = {(j.variant, j.sample): j.key for j in _plan(project).jobs if j.model == "tiny-llava"}
    spec = project / "specs/models/tiny-llava.yaml"
    spec.write_text(spec.read_text() + f"default_system: {VICUNA_V1}\n")
    plan = _plan(project)
    jobs = [j for j in plan.jobs if j.model == "tiny-llava"]
    for job in jobs:
        messages = plan.request(job).messages
        persona = job.variant == "persona"
        assert (messages.system == VICUNA_V1) is not persona
        assert (job.key == before[(job.variant, job.sample)]) is persona
        payload = {
            "model": plan.identities["tiny-llava"].payload,
            "messages": messages.key_payload(),
        }
        assert job.key == content_key(payload)
    assert {j.key for j in plan.jobs if j.model == "baseline-chance"} == {
        j.key
        for j in _plan(make_project(project.parent / "again", models=("baseline-chance",))).jobs
    }


def test_llava_15_spec_asks_with_the_vicuna_v1_system_text() -> None:
    specs = load_specs(Path(__file__).resolve().parents[2] / "specs")
    assert specs.models["llava-1.5-7b"].default_system == VICUNA_V1


def test_plan_key_changes_with_generation_parameters(project: Path) -> None:
    before = {j.key for j in _plan(project).jobs if j.model == "tiny-llava"}
    spec = project / "specs/models/tiny-llava.yaml"
    spec.write_text(spec.read_text().replace("max_new_tokens: 12", "max_new_tokens: 13"))
    after = {j.key for j in _plan(project).jobs if j.model == "tiny-llava"}
    assert before.isdisjoint(after)


def test_plan_limit_keeps_every_class(project: Path) -> None:
    plan = _plan(project, limit=2)
    samples = plan.samples["pneumonia_cxr"]
    assert sorted(s.label for s in samples) == ["normal", "pneumonia"]
    assert limit_samples(samples, None) == samples


def test_plan_unknown_model_names_the_choices(project: Path) -> None:
    with pytest.raises(
        UnknownIdError,
        match=r"^'nope' is not a model of suite t\. Choose from: baseline-chance, tiny-llava\.$",
    ):
        _plan(project, models=["nope"])


def test_plan_baseline_keys_hold_the_baseline_hints(project: Path) -> None:
    plan = _plan(project)
    job = next(j for j in plan.jobs if j.model == "baseline-chance")
    request = plan.request(job)
    payload = {
        "model": plan.identities["baseline-chance"].payload,
        "messages": request.messages.key_payload(),
        "baseline": {
            "options": list(request.options),
            "positive": list(request.positive_options),
            "majority": request.majority_option,
        },
    }
    assert job.key == content_key(payload)


def test_plan_model_whose_revision_cannot_resolve_is_unavailable_not_fatal(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    # read by medbench (as by transformers) from huggingface_hub.constants, set on import
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    suite = project / "specs/suites/t.yaml"
    suite.write_text(suite.read_text().replace("tiny-llava]", "tiny-llava, gemma-3-4b-it]"))
    plan = _plan(project)
    assert sorted(plan.unavailable) == ["gemma-3-4b-it"]
    assert plan.unavailable["gemma-3-4b-it"].startswith("google/gemma-3-4b-it@main: cannot resolve")
    assert plan.models == ["baseline-chance", "tiny-llava"]
    assert {j.model for j in plan.jobs} == {"baseline-chance", "tiny-llava"}


def test_plan_suite_subset_fixes_a_tasks_images_per_class(tmp_path: Path) -> None:
    project = make_project(tmp_path, tasks=("pneumonia_cxr", "histopathology"))
    suite = project / "specs/suites/t.yaml"
    suite.write_text(
        suite.read_text() + "subsets:\n  histopathology: {per_class: 3, reason: augmented}\n"
    )
    plan = _plan(project)
    assert {t: len(s) for t, s in plan.samples.items()} == {"histopathology": 9, "pneumonia_cxr": 4}
    assert plan.samples["histopathology"] == _plan(project).samples["histopathology"]  # seeded


def test_plan_paper_suite_states_its_histopathology_subset() -> None:
    paper = load_specs(Path(__file__).resolve().parents[2] / "specs").suite("paper")
    assert sorted(paper.subsets) == ["histopathology"]
    assert paper.limit_per_class_of("histopathology") == 250
    assert paper.limit_per_class_of("pneumonia_cxr") is None
    assert "750 originals" in paper.subsets["histopathology"].reason


def test_make_plan_noise_floor_replicates_the_reference_variant_of_a_seeded_subset(
    tmp_path: Path,
) -> None:
    project = make_project(
        tmp_path,
        families=("closed_diagnosis", "finding_present"),
        models=("baseline-chance", "tiny-llava"),
        limit_per_class=4,
        suite_extra="noise_floor: {images_per_task: 3}\n",
    )
    plan = _plan(project)
    replicates = [j for j in plan.jobs if j.replicate]
    first = {(j.model, j.family, j.variant, j.sample): j for j in plan.jobs if not j.replicate}
    # 2 models x 2 families x 3 of the 8 images, each family's reference variant only
    assert len(replicates) == 2 * 2 * 3
    assert {(j.family, j.variant) for j in replicates} == {
        ("closed_diagnosis", "plain"),
        ("finding_present", "plain"),
    }
    assert len({j.sample for j in replicates}) == 3
    for job in replicates:
        reference = first[(job.model, job.family, job.variant, job.sample)]
        assert job.key != reference.key
        assert plan.request(job).messages == plan.request(reference).messages
    # the replicates add jobs; every other key stays what it was without them
    (project / "specs" / "suites" / "t.yaml").write_text(
        (project / "specs" / "suites" / "t.yaml").read_text().replace("noise_floor:", "#")
    )
    assert [j.key for j in _plan(project).jobs] == [j.key for j in plan.jobs if not j.replicate]


def test_load_specs_pair_with_different_default_system_is_an_error(project: Path) -> None:
    from medbench.errors import SpecError

    spec = project / "specs/models/medgemma-4b-it.yaml"
    spec.write_text(spec.read_text() + "default_system: You are a helpful assistant.\n")
    with pytest.raises(SpecError) as raised:
        load_specs(project / "specs")
    line = len(spec.read_text().splitlines())
    assert str(raised.value) == (
        f"{spec}:{line}:17: default_system: `default_system` differs from its base "
        "'gemma-3-4b-it'. A pair must be asked alike: give both the same text."
    )


def test_plan_family_budget_enters_the_key_only_where_it_changes_the_models(
    project: Path,
) -> None:
    # closed_diagnosis allows 64 new tokens; tiny-llava's own 12 is lower and stays
    plan = _plan(project)
    tiny = [j for j in plan.jobs if j.model == "tiny-llava"]
    assert {plan.request(j).max_new_tokens for j in tiny} == {None}
    spec = project / "specs/models/tiny-llava.yaml"
    spec.write_text(spec.read_text().replace("max_new_tokens: 12", "max_new_tokens: 64"))
    at_budget = {j.key for j in _plan(project).jobs if j.model == "tiny-llava"}
    spec.write_text(spec.read_text().replace("max_new_tokens: 64", "max_new_tokens: 1024"))
    wide = _plan(project)
    jobs = [j for j in wide.jobs if j.model == "tiny-llava"]
    # a ceiling of 1024 with the family's 64: the answers (and keys) of a 64-token model
    assert {j.key for j in jobs} == at_budget
    assert {wide.request(j).max_new_tokens for j in jobs} == {64}
    assert wide.identities["tiny-llava"].payload["generation"]["max_new_tokens"] == 1024


def test_spec_dumps_leave_out_an_unset_default_system_and_family_budget(project: Path) -> None:
    # records and remembered batch sizes hash these dumps: unset new fields must not show
    specs = load_specs(project / "specs")
    assert "default_system" not in specs.models["tiny-llava"].model_dump(mode="json")
    assert specs.models["llava-1.5-7b"].model_dump(mode="json")["default_system"] == VICUNA_V1
    family = specs.families["closed_diagnosis"].model_copy(update={"max_new_tokens": None})
    assert "max_new_tokens" not in family.model_dump(mode="json")


def test_plan_family_budget_keys_only_the_models_whose_budget_it_lowers(tmp_path: Path) -> None:
    from medbench.spec import token_budget

    project = make_project(tmp_path, models=("llava-1.5-7b", "tiny-llava", "baseline-chance"))
    specs = load_specs(project / "specs")
    family = specs.families["closed_diagnosis"]
    assert family.max_new_tokens == 64
    assert token_budget(specs.models["llava-1.5-7b"], family) == 64  # its own is 1024
    assert token_budget(specs.models["tiny-llava"], family) is None  # its own 12 is lower
    assert token_budget(specs.models["baseline-chance"], family) is None
    plan = make_plan(specs, "t", models_dir=tmp_path / "m", placeholders=True)
    assert plan.budgets == {("llava-1.5-7b", "closed_diagnosis"): 64}
    job = next(j for j in plan.jobs if j.model == "llava-1.5-7b")
    assert plan.request(job).max_new_tokens == 64
    tiny = next(j for j in plan.jobs if j.model == "tiny-llava")
    assert plan.request(tiny).max_new_tokens is None
    unbudgeted = specs.families["closed_diagnosis"].model_copy(update={"max_new_tokens": None})
    specs.families["closed_diagnosis"] = unbudgeted
    before = make_plan(specs, "t", models_dir=tmp_path / "m", placeholders=True)
    keys = {(j.model, j.variant, j.sample): j.key for j in before.jobs}
    for j in plan.jobs:
        changed = keys[(j.model, j.variant, j.sample)] != j.key
        assert changed == (j.model == "llava-1.5-7b")


def test_plan_image_after_text_variant_has_its_own_key_and_leaves_the_others_unchanged(
    project: Path,
) -> None:
    plan = _plan(project)
    jobs = {(j.model, j.variant, j.sample): j for j in plan.jobs if j.model == "tiny-llava"}
    assert {v for _, v, _ in jobs} >= {"plain", "image-after"}
    for (model, variant, sample), job in jobs.items():
        messages = plan.request(job).messages
        payload = {
            "model": plan.identities[model].payload,
            "messages": {
                "system": messages.system,
                "text": messages.text,
                "images": [image.sha256 for image in messages.images],
            },
        }
        if variant != "image-after":  # an image-first job's key is what it was before
            assert messages.image_position == "before_text"
            assert job.key == content_key(payload)
            continue
        plain = jobs[(model, "plain", sample)]
        assert messages.image_position == "after_text"
        assert messages.text == plan.request(plain).messages.text
        assert job.key != plain.key
        placed = {**payload, "messages": {**payload["messages"], "image_position": "after_text"}}
        assert job.key == content_key(placed)


def test_plan_quickstart_asks_every_closed_family_with_the_image_after_the_text(
    tmp_path: Path,
) -> None:
    specs = load_specs(Path(__file__).resolve().parents[2] / "specs")
    plan = make_plan(specs, "quickstart", models_dir=tmp_path, models=["baseline-majority"])
    asked = {(j.family, j.variant) for j in plan.jobs}
    assert {f for f, v in asked if v == "image-after"} == {"closed_diagnosis", "finding_present"}
    assert not any(v == "image-after" for f, v in asked if f == "describe_findings")


def test_variant_of_kind_image_position_must_say_where_the_image_goes(project: Path) -> None:
    from medbench.errors import SpecError

    family = project / "specs/prompts/closed_diagnosis.yaml"
    family.write_text(family.read_text().replace("    image_position: after_text\n", ""))
    with pytest.raises(SpecError) as raised:
        load_specs(project / "specs")
    assert "a variant of kind `image_position` needs `image_position: after_text`" in str(
        raised.value
    )
