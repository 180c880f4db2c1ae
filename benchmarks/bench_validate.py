"""Benchmark `load_specs` and `medbench validate` on a generated tree of valid spec files.

Run: `.venv/bin/python benchmarks/bench_validate.py [--quick] [--files 200]`. Prints wall and
CPU times (CPU time is steadier on a busy machine) and whether torch was imported (it must not
be). Exits 1 if the valid tree fails validation or validate imports torch. `--quick`: 20 files,
one run each.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = """\
  - id: plain
    kind: wording
    template: "{{ question }} Answer with one of: {{ options | join(', ') }}."
  - {id: terse, kind: terse, template: "Diagnosis? {{ options | join(' / ') }}."}
  - id: persona
    kind: persona
    system: "You are an expert in reading {{ modality }}s."
    template: "{{ question }} Answer with one of: {{ options | join(', ') }}."
  - id: reversed
    kind: option_order
    option_order: reversed
    template: "{{ question }} {{ options | join(', ') }}?"
  - id: lettered
    kind: lettered
    lettered: true
    template: |-
      {{ question }}
      {{ lettered_options | join('\\n') }}
      Answer with the letter.
  - id: guided
    kind: guided
    template: >-
      {{ question }} Signs:
      {% for label in label_signs %}{{ label.name }}: {{ label.signs | join(', ') }}. {% endfor %}
      Answer with one of: {{ options | join(', ') }}.
"""


def _task(i: int) -> str:
    return f"""\
schema_version: 1
kind: task
id: task-{i}
title: Task {i}
description: >
  A generated task for the benchmark, with four classes of rising difficulty.
modality: chest X-ray
difficulty: {i % 10 + 1}
question: Which finding does this chest X-ray show?
finding: finding {i}
labels:
  - {{id: normal, name: normal, aliases: [no finding, clear], signs: [clear lung fields]}}
  - {{id: pneumonia, name: pneumonia, positive: true, signs: [consolidation, air bronchograms]}}
  - {{id: effusion, name: effusion, positive: true, signs: [blunted costophrenic angle]}}
  - {{id: nodule, name: nodule, positive: true, aliases: [mass], signs: [round opacity]}}
data:
  sample: {{format: imagefolder, path: data/sample/task-{i}}}
  full:
    format: imagefolder
    path: ${{MEDBENCH_DATA}}/task-{i}/test
    label_map: {{NORMAL: normal, PNEUMONIA: pneumonia}}
    homepage: https://example.org/task-{i}
"""


def _family(i: int) -> str:
    answer = "yes_no" if i % 2 else "label"
    head = f"schema_version: 1\nkind: prompt_family\nid: family-{i}\ntitle: Family {i}\n"
    return f"{head}answer: {answer}\nreference: plain\nvariants:\n{VARIANTS}"


def _model(i: int) -> str:
    base = f"base: model-{i - 1}\nmedical: true\n" if i % 2 else ""
    return f"""\
schema_version: 1
kind: model
id: model-{i}
title: Model {i}
backend: hf
family: llava
repo: example/model-{i}
dtype: bfloat16
generation: {{max_new_tokens: 64, do_sample: false}}
{base}"""


def _suite(i: int, tasks: int, families: int, models: int) -> str:
    def pick(prefix: str, n: int, k: int) -> str:
        return ", ".join(f"{prefix}-{(i * k + j) % n}" for j in range(k))

    return f"""\
schema_version: 1
kind: suite
id: suite-{i}
title: Suite {i}
data: sample
tasks: [{pick("task", tasks, 5)}]
prompt_families: [{pick("family", families, 3)}]
models: [{pick("model", models, 4)}]
"""


LABELS = ("normal", "pneumonia", "effusion", "nodule")


def _image() -> bytes:
    """A small PNG: what `validate` checks of each sample image (its header) it can read."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (8, 8), 128).save(out, format="PNG")
    return out.getvalue()


def write_tree(folder: Path, n_files: int = 200) -> Path:
    """Write `n_files` valid specs (1/4 tasks, 1/4 families, 2/5 models, the rest suites), and
    each task's sample data (`data/sample/task-N`, one image per label), which `validate`
    checks."""
    tasks, families, models = n_files // 4, n_files // 4, (n_files * 2 // 5) // 2 * 2
    suites = n_files - tasks - families - models
    specs = folder / "specs"
    groups = {
        "tasks": [(f"task-{i}", _task(i)) for i in range(tasks)],
        "prompts": [(f"family-{i}", _family(i)) for i in range(families)],
        "models": [(f"model-{i}", _model(i)) for i in range(models)],
        "suites": [(f"suite-{i}", _suite(i, tasks, families, models)) for i in range(suites)],
    }
    for group, files in groups.items():
        (specs / group).mkdir(parents=True, exist_ok=True)
        for name, text in files:
            (specs / group / f"{name}.yaml").write_text(text, encoding="utf-8")
    image = _image()
    for i in range(tasks):
        for label in LABELS:
            (folder / "data" / "sample" / f"task-{i}" / label).mkdir(parents=True)
            (folder / "data" / "sample" / f"task-{i}" / label / "0.png").write_bytes(image)
    return specs


def _validate_command(specs: Path) -> list[str]:
    console = shutil.which("medbench") or str(Path(sys.executable).parent / "medbench")
    if Path(console).is_file():
        return [console, "validate", str(specs)]
    code = "import sys; from pathlib import Path; from medbench.commands.validate import validate"
    return [sys.executable, "-c", f"{code}; validate(Path(sys.argv[1]))", str(specs)]


def _env() -> dict[str, str]:
    """This environment without `$MEDBENCH_DATA`: `validate` checks the project's data only."""
    return {k: v for k, v in os.environ.items() if k != "MEDBENCH_DATA"}


def _timed_run(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall and CPU seconds (user + system, of the child) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=_env())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="report the best of N runs")
    parser.add_argument("--quick", action="store_true", help="20 files, one run each")
    args = parser.parse_args()
    if args.quick:
        args.files, args.repeat = 20, 1
    from medbench.spec.loading import load_specs

    with tempfile.TemporaryDirectory() as tmp:
        specs = write_tree(Path(tmp), args.files)
        load_specs(specs)  # warm the template and validator caches: timed runs are steady state
        runs = []
        for _ in range(args.repeat):
            start, cpu = time.perf_counter(), time.process_time()
            loaded = load_specs(specs)
            runs.append((time.perf_counter() - start, time.process_time() - cpu))
        variants = sum(len(f.variants) for f in loaded.families.values())
        wall, cpu = min(runs)
        print(
            f"load_specs, {args.files} files, {variants} variants: {wall:.3f} s ({cpu:.3f} s CPU)"
        )
        command = _validate_command(specs)
        timed = [_timed_run(command) for _ in range(args.repeat)]
        wall, cpu, done = min(timed, key=lambda t: t[0])
        name = f"{Path(command[0]).name} validate"
        print(f"{name}: {wall:.3f} s ({cpu:.3f} s CPU), exit {done.returncode}")
        print(f"  {(done.stdout or done.stderr).strip()}")
        probe = (
            "import sys; from pathlib import Path; "
            "from medbench.commands.validate import validate; "
            "validate(Path(sys.argv[1])); print('torch' in sys.modules)"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe, str(specs)], capture_output=True, text=True, env=_env()
        )
        imported = (out.stdout.strip().splitlines() or ["(no answer)"])[-1]
        print(f"torch imported by validate: {imported}")
    problems = []
    if done.returncode != 0:
        problems.append(f"validate exited {done.returncode} on a valid tree")
    if out.returncode != 0 or imported != "False":
        problems.append(f"the torch probe said {imported!r} (exit {out.returncode}): {out.stderr}")
    for problem in problems:
        print(f"FAILED: {problem}")
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
