"""What reviewers are shown of the prompts (`medbench.run.sent`) is what the plan sends."""

from __future__ import annotations

from pathlib import Path

import pytest

from medbench.errors import SpecError
from medbench.run.diagnose import diagnose_messages
from medbench.run.plan import make_plan
from medbench.run.sent import prompts_sent, shown
from medbench.spec import asked_of
from medbench.spec.loading import load_specs
from medbench.spec.prompts import DESCRIPTION_MARK, fill, hidden
from tests.spec_tree import make_project, vqa_project

SLY_VQA = (
    "  - id: sly\n"
    "    kind: wording\n"
    "    template: >-\n"
    "      {% if sample.question.startswith('Is') or 'yes' in sample.options %}Say yes.\n"
    "      {% elif sample.options | length == 4 %}Pick the first option.\n"
    "      {% else %}{{ sample.question }}{% endif %} {{ sample.options | join(', ') }}\n"
)
SLY_DIAGNOSIS = (
    "  - id: sly\n"
    "    kind: wording\n"
    "    template: >-\n"
    "      {% if 'opacity' in description %}Answer pneumonia.{% endif %}\n"
    "      {% if description %}{{ description }}{% else %}Always answer pneumonia.{% endif %}\n"
    "      {{ labels | join(', ') }}\n"
)


def _add_variant(project: Path, family: str, variant: str) -> None:
    path = project / "specs" / "prompts" / f"{family}.yaml"
    path.write_text(path.read_text().rstrip("\n") + "\n" + variant)


@pytest.mark.parametrize("own_question", [True, False])
def test_prompts_sent_filled_in_are_every_prompt_the_plan_sends(
    tmp_path: Path, own_question: bool
) -> None:
    project = vqa_project(tmp_path)
    _add_variant(project, "closed_vqa", SLY_VQA)
    if not own_question:  # multiple choice on the task's question: shown as it is
        task = project / "specs" / "tasks" / "pmc_vqa_choice.yaml"
        task.write_text(task.read_text().replace("    question_column: question\n", ""))
    specs = load_specs(project / "specs")
    sent = prompts_sent(specs)
    plan = make_plan(specs, "t", models_dir=tmp_path / "m")
    cases = set()
    for job in plan.jobs:
        task, sample = specs.tasks[job.task], plan.sample(job.task, job.sample)
        case = f"{len(sample.options)} options" if sample.options else ""
        _, _, values = hidden(task, None, asked_of(task, sample))
        shown_text = sent[(job.family, job.variant, job.task, case)]
        assert shown(plan.request(job).messages) == fill(shown_text, values)
        cases.add((job.variant, case))
    assert ("sly", "") in cases  # the yes/no task's samples were asked the sly variant
    assert sent[("closed_vqa", "sly", "pmc_vqa_choice", "4 options")].startswith("Pick the first")
    shown_question = "\u27easample question\u27eb" if own_question else "Answer the question about"
    assert sent[("closed_vqa", "plain", "pmc_vqa_choice", "3 options")].startswith(shown_question)
    assert sent[("closed_vqa", "sly", "vqa_rad_yes_no", "")].startswith("Say yes.")


def test_prompts_sent_show_both_branches_of_a_template_on_the_description(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    _add_variant(project, "closed_diagnosis", SLY_DIAGNOSIS)
    suite = project / "specs" / "suites" / "t.yaml"
    suite.write_text(
        suite.read_text() + "describe: {family: describe_findings, diagnosers: [tiny-text],"
        " diagnose_families: [closed_diagnosis]}\n"
    )
    specs = load_specs(project / "specs")
    sent = prompts_sent(specs)
    direct = sent[("closed_diagnosis", "sly", "pneumonia_cxr", "")]
    diagnosed = sent[("closed_diagnosis", "sly", "pneumonia_cxr", "diagnosed from a description")]
    assert direct == "Always answer pneumonia. pneumonia, normal"
    assert diagnosed == "\u27eadescription\u27eb pneumonia, normal"
    family, task = specs.families["closed_diagnosis"], specs.tasks["pneumonia_cxr"]
    plan = make_plan(specs, "t", models_dir=tmp_path / "m")
    prompt = plan.prompts[("closed_diagnosis", "sly", "pneumonia_cxr")]
    received = diagnose_messages(prompt, task, family, "sly", "a lobar opacity")
    assert received.text == "a lobar opacity pneumonia, normal"  # the template never saw it
    empty = diagnose_messages(prompt, task, family, "sly", "")  # a model that wrote nothing
    assert empty.text == fill(diagnosed, {DESCRIPTION_MARK: ""}) == "pneumonia, normal"
    assert shown(prompt.rendered.messages) == direct


@pytest.mark.parametrize(
    "field", ["image_id", "label", "model", "sample.id", "sample.label", "sample.image"]
)
def test_a_template_cannot_branch_on_the_image_its_label_or_the_model(
    tmp_path: Path, field: str
) -> None:
    project = make_project(tmp_path)
    added = len(load_specs(project / "specs").families["closed_diagnosis"].variants)
    _add_variant(
        project,
        "closed_diagnosis",
        "  - id: sly\n    kind: wording\n    template: >-\n"
        f"      {{% if {field} == 'x' %}}Answer pneumonia.{{% endif %}}{{{{ question }}}}\n",
    )
    with pytest.raises(SpecError, match=rf"variants\.{added}\.template: undefined "):
        load_specs(project / "specs")
