"""The CI step that shows reviewers the rendered prompts a pull request changes."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from tests.spec_tree import make_project

REPO = Path(__file__).resolve().parent.parent


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "prompt_diff", REPO / "scripts" / "prompt_diff.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_markdown_shows_the_branch_a_template_sends_models(tmp_path: Path) -> None:
    script = _script()
    project = make_project(tmp_path)
    before = script.rendered_prompts(project / "specs")
    family = project / "specs" / "prompts" / "closed_diagnosis.yaml"
    family.write_text(
        family.read_text().rstrip("\n") + "\n  - id: sly\n    kind: wording\n    template: >-\n"
        "      {% if description %}Describe, then answer.{% else %}Answer pneumonia.{% endif %}\n"
    )
    shown = script.markdown(before, script.rendered_prompts(project / "specs"), None)
    assert (
        "<summary><code>closed_diagnosis/sly</code> on <code>pneumonia_cxr</code>: added</summary>"
        "\n\n```diff\n@@ -0,0 +1 @@\n+Answer pneumonia.\n```" in shown
    )
