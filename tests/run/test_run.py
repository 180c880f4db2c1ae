import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from medbench.run.backends.base import BackendContext
from medbench.run.cache import Cache
from medbench.run.loop import run_plan
from medbench.run.plan import Plan, make_plan
from medbench.spec.loading import load_specs
from tests.spec_tree import make_project


def _plan(project: Path, cache: Cache) -> Plan:
    specs = load_specs(project / "specs")
    return make_plan(specs, "t", models_dir=cache.path.parent / "models", hasher=cache.hash_file)


def _run(project: Path, cache: Cache, **kwargs: object) -> tuple[Plan, object]:
    specs = load_specs(project / "specs")
    plan = make_plan(specs, "t", models_dir=cache.path.parent / "models", hasher=cache.hash_file)
    return plan, run_plan(plan, specs, cache, progress=False, **kwargs)  # type: ignore[arg-type]


def _cli(project: Path, cache: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "medbench",
        *args,
        str(project / "specs"),
        "--suite",
        "t",
        "--cache",
        str(cache),
    ]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path, models=("tiny-llava", "baseline-chance"))


def test_run_then_rerun_computes_nothing(project: Path, tmp_path: Path) -> None:
    with Cache(tmp_path / "c.sqlite") as cache:
        plan, first = _run(project, cache)
        assert (first.ran, first.failed, first.cached) == (len(plan.jobs), 0, 0)  # type: ignore[attr-defined]
        _, second = _run(project, cache)
        assert (second.ran, second.cached) == (0, len(plan.jobs))  # type: ignore[attr-defined]


def test_run_cached_rerun_does_not_import_torch(project: Path, tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        _cli(project, cache, "run") + ["--no-score"], check=True, env=env, capture_output=True
    )
    argv = ["medbench", "run", str(project / "specs"), "--suite", "t", "--cache", str(cache)]
    probe = "\n".join(
        [
            "import sys, runpy",
            f"sys.argv = {argv + ['--no-score']!r}",
            "try:",
            "    runpy.run_module('medbench', run_name='__main__')",
            "except SystemExit:",
            "    pass",
            "heavy = 'torch' in sys.modules or 'transformers' in sys.modules",
            "print('TORCH' if heavy else 'CLEAN')",
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, env=env, capture_output=True, text=True
    )
    assert out.stdout.strip().splitlines()[-1] == "CLEAN"
    assert "0 ran" in out.stderr


def test_run_changed_template_reruns_only_that_variant(project: Path, tmp_path: Path) -> None:
    with Cache(tmp_path / "c.sqlite") as cache:
        _run(project, cache)
        family = project / "specs/prompts/closed_diagnosis.yaml"
        family.write_text(family.read_text().replace("Diagnosis? ", "Your diagnosis? "))
        plan, summary = _run(project, cache)
    terse = [j for j in plan.jobs if j.variant == "terse"]
    assert summary.ran == len(terse) > 0  # type: ignore[attr-defined]
    assert summary.cached == len(plan.jobs) - len(terse)  # type: ignore[attr-defined]


def test_run_corrupt_images_fail_only_their_jobs(project: Path, tmp_path: Path) -> None:
    folder = project / "data/sample/pneumonia_cxr/normal"
    # Kermany-style names: the task groups images by the patient in the name
    (folder / "IM-9900-zz_text.jpg").write_text("not an image")
    good = next(folder.glob("*.jpg")).read_bytes()
    (folder / "IM-9900-zz_cut.jpg").write_bytes(good[: len(good) // 2])
    Image.new("CMYK", (40, 30), (10, 20, 30, 0)).save(folder / "IM-9900-zz_cmyk.jpg")
    Image.new("I;16", (40, 30), 40000).save(folder / "IM-9900-zz_16bit.png")
    suite = project / "specs/suites/t.yaml"
    suite.write_text(suite.read_text().replace("limit_per_class: 2\n", ""))
    with Cache(tmp_path / "c.sqlite") as cache:
        plan, summary = _run(project, cache)
        stored = cache.get_many(j.key for j in plan.jobs)
    by_sample = {}
    for job in plan.jobs:
        if job.model == "tiny-llava":
            by_sample.setdefault(job.sample, set()).add(stored[job.key].error is None)
    assert by_sample["normal/IM-9900-zz_text"] == {False}
    assert by_sample["normal/IM-9900-zz_cut"] == {False}
    assert by_sample["normal/IM-9900-zz_cmyk"] == {True}
    assert by_sample["normal/IM-9900-zz_16bit"] == {True}
    ok = [s for s in by_sample if not s.startswith("normal/IM-9900-zz_")]
    assert all(by_sample[s] == {True} for s in ok)
    assert summary.failed == 2 * 8  # type: ignore[attr-defined]


@pytest.mark.slow
def test_run_killed_mid_run_resumes_with_one_answer_per_job(project: Path, tmp_path: Path) -> None:
    suite = project / "specs/suites/t.yaml"
    suite.write_text(suite.read_text().replace("limit_per_class: 2", "limit_per_class: 8"))
    cache = tmp_path / "c.sqlite"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = _cli(project, cache, "run") + ["--no-score", "--batch-size", "2", "--model", "tiny-llava"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    stored = 0
    while time.monotonic() < deadline and stored < 20:
        time.sleep(0.2)
        if cache.exists():
            try:
                stored = (
                    sqlite3.connect(cache).execute("SELECT COUNT(*) FROM answers").fetchone()[0]
                )
            except sqlite3.OperationalError:
                stored = 0
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < stored < 112, "the run should be killed part-way"
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    with Cache(cache) as store:
        plan = _plan(project, store)
        keys = {j.key for j in plan.jobs if j.model == "tiny-llava"}
        assert store.finished_keys() == keys
    rows = (
        sqlite3.connect(cache)
        .execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM answers")
        .fetchone()
    )
    assert rows == (len(keys), len(keys))


@pytest.mark.slow
def test_run_two_concurrent_runs_on_one_cache_both_finish(project: Path, tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = _cli(project, cache, "run") + ["--no-score", "--batch-size", "2"]
    procs = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1][-2000:] for r in results]
    with Cache(cache) as store:
        keys = {j.key for j in _plan(project, store).jobs}
        assert store.finished_keys() == keys
    db = sqlite3.connect(cache)
    assert db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == len(keys)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_run_batch_size_does_not_change_answers(project: Path, tmp_path: Path) -> None:
    answers = []
    for size in (1, 8):
        with Cache(tmp_path / f"c{size}.sqlite") as cache:
            plan, _ = _run(project, cache, context=BackendContext(batch_size=size))
            stored = cache.get_many(j.key for j in plan.jobs)
            answers.append([stored[j.key].output for j in plan.jobs])
    assert answers[0] == answers[1]


def test_check_batch_invariance_reports_no_flip_for_greedy_decoding(
    project: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from medbench.cli import app

    result = CliRunner().invoke(
        app,
        [
            "check",
            "batch-invariance",
            "--model",
            "tiny-llava",
            "--suite",
            "t",
            "--n",
            "12",
            "--cache",
            str(tmp_path / "c.sqlite"),
            str(project / "specs"),
        ],
    )
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last == "tiny-llava: 12 jobs, 0 differ between batch 1 and batch 8."


BROKEN_MODEL = (
    "schema_version: 1\nkind: model\nid: broken-llava-med\ntitle: LLaVA-Med, not converted\n"
    "backend: hf\nfamily: llava\nrepo: microsoft/llava-med-v1.5-mistral-7b\n"
    f"revision: {'a' * 40}\ncheckpoint_format: llava_original\n"
)
NOT_CONVERTED = (
    "model broken-llava-med: `checkpoint_format: llava_original` is the original LLaVA code's "
    "layout, which transformers cannot load. Convert it first with `medbench convert llava-med "
    "SRC DST`, then point `path:` at DST (with `checkpoint_format: hf`)."
)


def test_run_model_that_cannot_load_fails_only_its_jobs(project: Path, tmp_path: Path) -> None:
    (project / "data/empty").mkdir()
    spec = project / "specs/models/tiny-llava.yaml"
    spec.write_text(spec.read_text().replace("tiny: {arch: llava, seed: 0}", "path: data/empty"))
    with Cache(tmp_path / "c.sqlite") as cache:
        plan, summary = _run(project, cache)
        broken = {j.key for j in plan.jobs if j.model == "tiny-llava"}
        errors = {a.error for a in cache.get_many(broken).values()}
        assert broken and cache.finished_keys() == {j.key for j in plan.jobs} - broken
        _, again = _run(project, cache)
    assert (summary.ran, summary.failed) == (len(plan.jobs) - len(broken), len(broken))  # type: ignore[attr-defined]
    reason = summary.failed_models["tiny-llava"]  # type: ignore[attr-defined]
    assert reason.startswith(f"model tiny-llava: cannot load {project / 'data/empty'}: ")
    assert errors == {f"model failed: {reason}"}
    assert summary.lines()[1:] == [  # type: ignore[attr-defined]
        f"  {len(broken)} x model failed",
        "1 models failed (the others ran):",
        f"  tiny-llava: {reason}",
    ]
    # A failed load is not an answer: the next run tries the model again.
    assert (again.ran, again.failed, again.cached) == (0, len(broken), len(plan.jobs) - len(broken))  # type: ignore[attr-defined]


def test_run_suite_with_a_broken_model_scores_the_others_and_exits_1(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medbench.cli import app

    project = make_project(
        tmp_path, models=("baseline-chance", "broken-llava-med", "baseline-majority")
    )
    (project / "specs/models/broken-llava-med.yaml").write_text(BROKEN_MODEL)
    results = tmp_path / "results"
    args = ["run", str(project / "specs"), "--suite", "t", "--cache", str(tmp_path / "c.sqlite")]
    # a real model: only --device cpu lets it start here (where it then fails to load)
    options = ["--no-site", "--results", str(results), "--device", "cpu"]
    result = CliRunner().invoke(app, [*args, *options], env={"COLUMNS": "1000"})
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert "1 models failed (the others ran):" in lines
    assert f"  broken-llava-med: {NOT_CONVERTED}" in lines
    assert lines[-1] == "Failed models: broken-llava-med (see above); the others were scored."
    import pandas as pd

    scores = pd.read_csv(results / "t" / "scores.csv")
    answered = scores[scores.n > 0]
    assert sorted(set(answered.model)) == ["baseline-chance", "baseline-majority"]
    assert set(scores[scores.model == "broken-llava-med"].n) == {0}


def test_run_model_whose_backend_raises_part_way_keeps_its_answers_and_fails_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medbench.run.backends.base import Output
    from medbench.run.executors import local

    class DiesAfterOneBatch:
        preferred_batch = 2
        calls = 0

        def generate(self, requests: object) -> list[Output]:
            DiesAfterOneBatch.calls += 1
            if DiesAfterOneBatch.calls > 1:
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            return [Output(text="normal")] * 2

        def close(self) -> None:
            pass

    monkeypatch.setattr(local, "load_backend", lambda spec, context: DiesAfterOneBatch())
    # the runner plans batches at the backend class's preferred size
    monkeypatch.setattr("medbench.run.backends.baseline.BaselineBackend.preferred_batch", 2)
    project = make_project(tmp_path, models=("baseline-chance",))
    with Cache(tmp_path / "c.sqlite") as cache:
        plan, summary = _run(project, cache)
        stored = cache.get_many(j.key for j in plan.jobs)
    reason = "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert summary.failed_models == {"baseline-chance": reason}  # type: ignore[attr-defined]
    assert sorted(a.error or "" for a in stored.values()) == [""] * 2 + [
        f"model failed: {reason}"
    ] * (len(plan.jobs) - 2)


def test_run_probe_stage_leaves_out_a_model_that_cannot_load(project: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medbench.cli import app

    (project / "data/empty").mkdir()
    spec = project / "specs/models/tiny-llava.yaml"
    spec.write_text(spec.read_text().replace("tiny: {arch: llava, seed: 0}", "path: data/empty"))
    suite = project / "specs/suites/t.yaml"
    suite.write_text(suite.read_text() + "probe: {folds: 2}\n")
    results = tmp_path / "results"
    args = ["run", str(project / "specs"), "--suite", "t", "--cache", str(tmp_path / "c.sqlite")]
    options = ["--no-site", "--results", str(results)]
    result = CliRunner().invoke(app, [*args, *options], env={"COLUMNS": "1000"})
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Failed models: tiny-llava (see above); the others were scored."
    )
    assert "probe: tiny-llava left out: model tiny-llava: cannot load " in result.output
    assert (results / "t" / "ladder.csv").is_file()


def test_run_stores_the_image_processor_with_each_answer(project: Path, tmp_path: Path) -> None:
    import json

    from medbench.score.answers import collect_answers

    with Cache(tmp_path / "c.sqlite") as cache:
        plan, _ = _run(project, cache)
        stored = cache.get_many(job.key for job in plan.jobs)
        by_model: dict[str, set[object]] = {}
        for job in plan.jobs:
            prompt = json.loads(stored[job.key].prompt)
            by_model.setdefault(job.model, set()).add(prompt.get("image_processor"))
        # no torchvision here: transformers falls back to the PIL image processors
        assert by_model == {"tiny-llava": {"pil:CLIPImageProcessorPil"}, "baseline-chance": {None}}
        frame = collect_answers(load_specs(project / "specs"), plan, cache)
    used = frame.groupby("model")["image_processor"].agg(lambda s: sorted(set(s.dropna())))
    assert used.to_dict() == {"baseline-chance": [], "tiny-llava": ["pil:CLIPImageProcessorPil"]}


def _recorded_batches(
    project: Path, cache: Cache, monkeypatch: pytest.MonkeyPatch, size: int
) -> tuple[Plan, list[list[str]]]:
    """Run the plan at batch size `size`; the keys of every batch the baselines were sent."""
    from medbench.run.backends.baseline import BaselineBackend

    batches: list[list[str]] = []
    answer = BaselineBackend.generate

    def recording(self: BaselineBackend, requests: list[object]) -> list[object]:
        batches.append([r.key for r in requests])  # type: ignore[attr-defined]
        return answer(self, requests)  # type: ignore[arg-type]

    monkeypatch.setattr(BaselineBackend, "generate", recording)
    plan, _ = _run(project, cache, context=BackendContext(batch_size=size))
    monkeypatch.undo()
    return plan, batches


def test_run_resumed_batches_exactly_like_a_cold_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(
        tmp_path,
        tasks=("pneumonia_cxr", "skin_lesion"),
        families=("closed_diagnosis", "finding_present"),
        models=("baseline-chance", "baseline-majority"),
        limit_per_class=3,
    )
    with Cache(tmp_path / "cold.sqlite") as cold:
        plan, cold_batches = _recorded_batches(project, cold, monkeypatch, 5)
        rows = cold.get_many(j.key for j in plan.jobs)
    # An earlier run stored batches 1 and 4 whole (the cache stores batches as they finish),
    # and one job of batch 6 (whose batch-mates failed).
    with Cache(tmp_path / "resumed.sqlite") as resumed:
        stored = [*cold_batches[1], *cold_batches[4], cold_batches[6][0]]
        resumed.put_many(
            (r.key, r.model, r.task, r.family, r.variant, r.sample, r.prompt, r.output, None, 0.0)
            for r in (rows[k] for k in stored)
        )
        _, resumed_batches = _recorded_batches(project, resumed, monkeypatch, 5)
    expected = [b for i, b in enumerate(cold_batches) if i not in (1, 4)]
    expected[4] = expected[4][1:]  # batch 6, less its stored job, still alone
    assert resumed_batches == expected
    # every image's prompts sit side by side: one task per batch, few images per batch
    tasks = {j.key: j.task for j in plan.jobs}
    assert all(len({tasks[k] for k in batch}) == 1 for batch in cold_batches)
    assert len(cold_batches) > 10


def _position_dependent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Baselines that answer the first request of a batch with its first option and the
    others with the last: answers that depend on batch position, as bf16 batching can."""
    from medbench.run.backends.base import Output
    from medbench.run.backends.baseline import BaselineBackend

    def generate(self: BaselineBackend, requests: list[object]) -> list[Output]:
        return [
            Output(r.options[0] if i == 0 else r.options[-1])  # type: ignore[attr-defined]
            for i, r in enumerate(requests)
        ]

    monkeypatch.setattr(BaselineBackend, "generate", generate)


def test_check_batch_invariance_prints_each_flip_with_its_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from medbench.cli import app

    project = make_project(tmp_path, models=("baseline-majority",), limit_per_class=1)
    _position_dependent(monkeypatch)
    args = ["check", "batch-invariance", "--model", "baseline-majority", "--n", "2"]
    args += ["--batch-size", "2", "--cache", str(tmp_path / "c.sqlite"), str(project / "specs")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FLIP baseline-majority pneumonia_cxr/closed_diagnosis/")
    assert lines[0].endswith(": batch 1 'pneumonia' != batch 2 'normal'")
    assert lines[1].startswith("  user: ")
    assert lines[-2].startswith("  image: ") and "data/sample/pneumonia_cxr/" in lines[-2]
    assert lines[-1] == "baseline-majority: 2 jobs, 1 differ between batch 1 and batch 2."


def _scored(project: Path, cache: Cache, **kwargs: object) -> tuple[object, object]:
    from medbench.score.answers import collect_answers, make_layout
    from medbench.score.scoring import score_answers

    specs = load_specs(project / "specs")
    plan, summary = _run(project, cache, **kwargs)
    layout = make_layout(specs, plan)
    return summary, score_answers(collect_answers(specs, plan, cache), layout)


def test_run_noise_floor_is_exactly_0_on_cpu_and_its_replicates_are_cached(
    tmp_path: Path,
) -> None:
    project = make_project(
        tmp_path, models=("tiny-llava",), suite_extra="noise_floor: {images_per_task: 4}\n"
    )
    with Cache(tmp_path / "c.sqlite") as cache:
        # a fixed batch size: the runner plans the batches (`auto` lets the backend size them)
        first, tables = _scored(project, cache, context=BackendContext(batch_size=8))
        assert (first.ran, first.planned) == (32 + 4, 32 + 4)  # type: ignore[attr-defined]
        plan = _plan(project, cache)
        stored = cache.get_many(j.key for j in plan.jobs)
        _, second = _run(project, cache)
    assert (second.ran, second.cached) == (0, 36)  # type: ignore[attr-defined]
    # the replicates ran in a batch of their own (4), the 32 first answers in batches of 8: each
    # image's 8 wordings, never split between batches (its prefix computed once)
    sizes = {j.replicate: set() for j in plan.jobs}
    for job in plan.jobs:
        sizes[job.replicate].add((stored[job.key].batch_size, stored[job.key].precision))
    assert sizes == {0: {(8, "float32")}, 1: {(4, "float32")}}
    row = tables.fragility.iloc[0]  # type: ignore[attr-defined]
    assert (row["noise_floor_n"], row["noise_floor"]) == (4, 0.0)
    # 0 differences in 4 images: Clopper-Pearson's exact 95% interval, [0, 1 - 0.025 ** (1 / 4)]
    assert row["noise_floor_lo"] == 0.0
    assert row["noise_floor_hi"] == pytest.approx(1 - 0.025 ** (1 / 4))


def test_run_answers_that_depend_on_batch_position_raise_the_noise_floor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(
        tmp_path,
        models=("baseline-majority",),
        limit_per_class=4,
        suite_extra="noise_floor: {images_per_task: 8}\n",
    )
    _position_dependent(monkeypatch)
    with Cache(tmp_path / "c.sqlite") as cache:
        _, tables = _scored(project, cache, context=BackendContext(batch_size=3))
    row = tables.fragility.iloc[0]  # type: ignore[attr-defined]
    assert row["noise_floor_n"] == 8
    assert row["noise_floor"] > 0
    assert row["above_noise_floor"] == (row["disagreement_lo"] > row["noise_floor_hi"])


_HASH = Cache.hash_file


def _unreadable(project: Path) -> Path:
    return sorted((project / "data/sample/pneumonia_cxr/normal").glob("*.jpg"))[0]


def test_run_image_unreadable_while_hashing_fails_only_its_jobs(tmp_path: Path) -> None:
    project = make_project(tmp_path, models=("baseline-chance",), limit_per_class=None)
    specs = load_specs(project / "specs")
    bad = _unreadable(project)
    with Cache(tmp_path / "c.sqlite") as cache:

        def hasher(path: Path) -> str:
            if path == bad:  # what a disk read error looks like
                raise OSError(5, "Input/output error", str(path))
            return cache.hash_file(path)

        plan = make_plan(specs, "t", models_dir=tmp_path / "models", hasher=hasher)
        summary = run_plan(plan, specs, cache, progress=False)
        stored = cache.get_many(j.key for j in plan.jobs)
    broken = [j for j in plan.jobs if j.sample == f"normal/{bad.stem}"]
    assert len(broken) == 8 and summary.failed == 8 and summary.ran == len(plan.jobs) - 8
    assert {stored[j.key].error for j in broken} == {
        f"image cannot be read: {bad} (Input/output error)"
    }
    assert dict(summary.failures) == {"image cannot be read": 8}


def test_run_command_exits_1_and_says_how_many_jobs_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from medbench.cli import app

    project = make_project(tmp_path, models=("baseline-chance",), limit_per_class=None)
    bad = _unreadable(project)

    def hash_file(self: Cache, path: Path) -> str:
        if path == bad:
            raise OSError(5, "Input/output error", str(path))
        return _HASH(self, path)

    monkeypatch.setattr(Cache, "hash_file", hash_file)
    argv = ["run", str(project / "specs"), "--suite", "t", "--cache", str(tmp_path / "c.sqlite")]
    result = CliRunner().invoke(app, [*argv, "--no-score"])
    assert result.exit_code == 1, result.output
    total = 8 * len(list((project / "data/sample/pneumonia_cxr").rglob("*.jpg")))
    assert result.output.splitlines()[-1] == (
        f"8 of {total} jobs failed (not stored as answers); rerun to retry them."
    )
