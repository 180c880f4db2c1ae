"""Print, as Markdown, the rendered prompts that differ between a base commit and the work tree.

CI writes the output to the pull request's job summary, so that reviewers read the prompts a
spec change produces, not only the YAML that produces them. Every variant of every prompt
family is rendered for every task, at the base commit (a temporary git worktree) and here,
by the plan's own rendering (`medbench.run.sent`): each rendering, with its marks filled in,
is exactly what every image and model is sent (a template cannot branch on a marked value).

    python scripts/prompt_diff.py --base origin/main >> "$GITHUB_STEP_SUMMARY"
"""

from __future__ import annotations

import argparse
import difflib
import subprocess
import sys
import tempfile
from pathlib import Path

from medbench.errors import MedbenchError
from medbench.run.sent import prompts_sent
from medbench.spec.loading import load_specs

Rendered = dict[tuple[str, str, str, str], str]
MARKS_NOTE = (
    "Text in \u27ea\u27eb stands for what differs per image or per model (a model's "
    "description, a sample's own question or options): filled in after rendering, so a "
    "template cannot branch on it. A model's default system text is sent where a variant "
    "has none."
)


def rendered_prompts(specs_dir: Path) -> Rendered:
    """(family, variant, task, case) -> every distinct prompt the specs may send."""
    return prompts_sent(load_specs(specs_dir))


def base_prompts(base: str, specs_dir: Path) -> tuple[Rendered, str | None]:
    """The prompts at a base commit, or none and a note when its specs cannot be loaded."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--quiet", str(tree), base], check=True
        )
        try:
            return rendered_prompts(tree / specs_dir), None
        except MedbenchError as e:
            first = str(e).splitlines()[0]
            return {}, f"The specs at {base} do not load ({first}); every prompt shows as added."
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], check=False)


def markdown(before: Rendered, after: Rendered, note: str | None) -> str:
    lines = ["## Rendered prompts changed by this pull request", "", MARKS_NOTE, ""]
    if note:
        lines += [f"> {note}", ""]
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if not changed:
        return "\n".join([*lines, "No rendered prompt changes.", ""])
    lines += [f"{len(changed)} rendered prompt(s) differ (family / variant / task).", ""]
    for family, variant, task, case in changed:
        old, new = (
            before.get((family, variant, task, case)),
            after.get((family, variant, task, case)),
        )
        status = "added" if old is None else "removed" if new is None else "changed"
        diff = difflib.unified_diff(
            (old or "").splitlines(), (new or "").splitlines(), "base", "this PR", lineterm="", n=50
        )
        where = f" on <code>{task}</code>" if task else ""
        when = f" ({case})" if case else ""
        lines += [
            f"<details><summary><code>{family}/{variant}</code>{where}{when}: {status}</summary>",
            "",
            "```diff",
            *list(diff)[2:],
            "```",
            "",
            "</details>",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="The base commit or branch to compare with.")
    parser.add_argument("--specs", type=Path, default=Path("specs"), help="Spec folder (relative).")
    args = parser.parse_args(argv)
    before, note = base_prompts(args.base, args.specs)
    try:
        after = rendered_prompts(args.specs)
    except MedbenchError as e:
        print(
            f"## Rendered prompts\n\nThe specs of this pull request do not load:\n\n```\n{e}\n```"
        )
        return 0  # `medbench validate` fails the job; this step only reports
    print(markdown(before, after, note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
