"""Tests of option log-likelihoods: the forward passes (tiny models, sample images), the job
kind and its keys, the stage (cache, scores, outputs) and the answers' scoring."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from medbench.data.images import load_image, sha256_file
from medbench.run.backends.base import BackendContext, Request
from medbench.run.backends.hf import HFBackend
from medbench.run.backends.hf.chat import conversation
from medbench.run.backends.hf.likelihood import AUTO_ROWS, OptionScorer, OptionScores
from medbench.run.cache import Cache
from medbench.run.plan import make_plan
from medbench.score.answers import collect_answers, make_layout
from medbench.score.likelihood import (
    LikelihoodAnswer,
    collect_likelihoods,
    compute_likelihoods,
    likelihood_jobs,
    run_likelihood_stage,
)
from medbench.score.likelihood.score import answers_frame, moves, risk_coverage_curves
from medbench.spec.loading import load_specs
from medbench.spec.prompts import ImageRef, Messages
from tests.spec_tree import make_project, tiny_model_spec

QUESTION = "Is there a tumour in this brain MRI? Answer with one of: glioma, no tumor."
SHARED_PREFIX = ("no", "no tumor", "glioma")
"""`no` is the first token of `no tumor`: its span must stop there."""


@pytest.fixture
def open_backend() -> Iterator[Any]:
    opened: list[HFBackend] = []

    def open_(arch: str, folder: Path, batch_size: int = 8) -> HFBackend:
        context = BackendContext(device="cpu", batch_size=batch_size, checkpoint_dir=folder)
        backend = HFBackend(tiny_model_spec(arch, dtype="float32"), context)
        opened.append(backend)
        return backend

    yield open_
    for backend in opened:
        backend.close()


@pytest.fixture
def tiny_dirs(tiny_llava_dir: Path, tiny_llava_next_dir: Path, tiny_gemma3_dir: Path) -> Any:
    return {"llava": tiny_llava_dir, "llava_next": tiny_llava_next_dir, "gemma3": tiny_gemma3_dir}


def requests_for(images: list[Path], options: tuple[str, ...] = SHARED_PREFIX) -> list[Request]:
    return [
        Request(
            f"k{i}",
            Messages(None, QUESTION, (ImageRef(str(path), sha256_file(path)),)),
            options,
        )
        for i, path in enumerate(images)
    ]


REPLY_SEPARATOR = {"llava": " ", "llava_next": " ", "gemma3": ""}
"""What each tiny template writes between its generation prompt and the assistant's reply
(`ASSISTANT:` then ` yes`, `[/INST]` then ` yes`, `<start_of_turn>model\n` then `yes`)."""


def hand_loglikelihood(backend: HFBackend, request: Request, option: str) -> tuple[float, int]:
    """One unbatched, unpadded forward pass over prompt + reply tokens, all logits kept."""
    loaded = backend._loaded
    image = load_image(request.messages.images[0].path)
    turns = conversation(None, request.messages.text, [image], system_role=backend.system_role)
    prompt = loaded.processor.apply_chat_template(
        turns, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    text = backend.prompt(request.messages)
    reply = REPLY_SEPARATOR[backend.spec.tiny.arch if backend.spec.tiny else ""] + option
    head = loaded.tokenizer(text, add_special_tokens=False)["input_ids"]
    option_ids = loaded.tokenizer(text + reply, add_special_tokens=False)["input_ids"][len(head) :]
    inputs = dict(prompt)
    n = inputs["input_ids"].shape[1]
    inputs["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([option_ids])], dim=1)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    if "token_type_ids" in inputs:
        pad = torch.zeros((1, len(option_ids)), dtype=torch.long)
        inputs["token_type_ids"] = torch.cat([inputs["token_type_ids"], pad], dim=1)
    with torch.no_grad():
        logits = loaded.model(**inputs).logits[0].double()
    logprobs = torch.log_softmax(logits, dim=-1)
    total = sum(float(logprobs[n - 1 + j, t]) for j, t in enumerate(option_ids))
    return total, len(option_ids)


@pytest.mark.parametrize("arch", ["llava", "llava_next", "gemma3"])
def test_option_scorer_equals_a_hand_computed_forward_pass(
    arch: str, tiny_dirs: dict[str, Path], sample_images: list[Path], open_backend: Any
) -> None:
    backend = open_backend(arch, tiny_dirs[arch])
    request = requests_for(sample_images[:1])[0]
    [scores] = OptionScorer(backend).score([request])
    assert scores.error is None and scores.merged == (False, False, False)
    for option, total, n in zip(SHARED_PREFIX, scores.total, scores.n_tokens, strict=True):
        # the option as offered and capitalised, as the model might write it
        forms = [hand_loglikelihood(backend, request, o) for o in (option, option.capitalize())]
        assert n == max(forms)[1]
        assert total == pytest.approx(float(np.logaddexp(*(t for t, _ in forms))), abs=1e-5)
        assert max(forms)[0] < total < 0


@pytest.mark.parametrize(
    ("arch", "fields"),
    [("llava", {"image_preprocess": "pad_square"}), ("gemma3", {"system_prompt": "none"})],
)
def test_option_scorer_encodes_the_prompt_exactly_as_generation_does(
    arch: str, fields: dict[str, str], tiny_dirs: dict[str, Path], tmp_path: Path
) -> None:
    from PIL import Image

    path = tmp_path / "wide.png"
    Image.new("RGB", (40, 20), (255, 0, 0)).save(path)  # padding to a square changes it
    context = BackendContext(device="cpu", batch_size=1, checkpoint_dir=tiny_dirs[arch])
    backend = HFBackend(tiny_model_spec(arch, dtype="float32", **fields), context)
    try:
        request = Request(
            "k", Messages("You are a radiologist.", QUESTION, (ImageRef(str(path), "x"),)), ("no",)
        )
        batch = backend._prepare([request], range(1))
        assert batch.inputs is not None
        encoded = OptionScorer(backend)._encode(0, request)
        assert sorted(encoded.prompt) == sorted(batch.inputs)
        for name, tensor in batch.inputs.items():
            assert torch.equal(encoded.prompt[name], tensor), name
    finally:
        backend.close()


def test_option_scorer_span_of_a_shared_prefix_option_is_exactly_its_tokens(
    tiny_gemma3_dir: Path, sample_images: list[Path], open_backend: Any
) -> None:
    backend = open_backend("gemma3", tiny_gemma3_dir)
    tokenizer = backend._loaded.tokenizer
    no, no_tumor = (tokenizer(o, add_special_tokens=False)["input_ids"] for o in SHARED_PREFIX[:2])
    assert no_tumor[: len(no)] == no and len(no_tumor) > len(no)
    [scores] = OptionScorer(backend, case_forms=False).score(requests_for(sample_images[:1]))
    assert scores.n_tokens[:2] == (len(no), len(no_tumor))
    # The longer option adds its own further tokens' log-probabilities to the shared ones.
    assert scores.total[1] < scores.total[0]
    assert scores.mean == tuple(t / n for t, n in zip(scores.total, scores.n_tokens, strict=True))


@pytest.mark.parametrize(("share_prefix", "passes"), [(False, (6, 2)), (True, (12, 4))])
@pytest.mark.parametrize("arch", ["llava", "gemma3"])
def test_option_scorer_is_batch_invariant_on_cpu(
    arch: str,
    share_prefix: bool,
    passes: tuple[int, int],
    tiny_dirs: dict[str, Path],
    sample_images: list[Path],
    open_backend: Any,
) -> None:
    requests = requests_for(sample_images[::7][:6])
    one = OptionScorer(
        open_backend(arch, tiny_dirs[arch], batch_size=1),
        share_prefix=share_prefix,
        case_forms=False,
    )
    many = OptionScorer(
        open_backend(arch, tiny_dirs[arch], batch_size=9),
        share_prefix=share_prefix,
        case_forms=False,
    )
    alone, batched = one.score(requests), many.score(requests)
    # Full sequences: batch size 1 still holds a request's three options in one pass; 9 holds
    # three requests. Shared prefix: a prompt pass and an option pass per such batch.
    assert (one.forward_passes, many.forward_passes) == passes
    for a, b in zip(alone, batched, strict=True):
        np.testing.assert_allclose(a.total, b.total, rtol=0, atol=1e-6)


MIXED = (
    "Is there a tumour in this brain MRI? Answer with one of: glioma, no tumor.",
    "Which of these does the image show: glioma, meningioma, pituitary tumor or no tumor?",
)
"""Two prompts of different lengths: their requests cannot share one prompt pass."""


def _prompt_shapes(backend: HFBackend, request: Request) -> tuple[tuple[int, ...], ...]:
    """The shapes of a request's prompt tensors as the processor encodes it alone."""
    image = load_image(request.messages.images[0].path)
    turns = conversation(None, request.messages.text, [image], system_role=backend.system_role)
    prompt = backend._loaded.processor.apply_chat_template(
        turns, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    return tuple(tuple(prompt[k].shape) for k in sorted(prompt))


@pytest.mark.parametrize("arch", ["llava", "llava_next", "gemma3"])
def test_option_scorer_shared_prefix_equals_full_sequences(
    arch: str, tiny_dirs: dict[str, Path], sample_images: list[Path], open_backend: Any
) -> None:
    backend = open_backend(arch, tiny_dirs[arch], batch_size=12)
    options = ("no", "no tumor", "glioma", "pituitary tumor")
    requests = [
        Request(
            f"k{i}",
            Messages(None, MIXED[i % 2], (ImageRef(str(path), sha256_file(path)),)),
            options,
        )
        for i, path in enumerate(sample_images[::9][:6])
    ]
    full = OptionScorer(backend, share_prefix=False, case_forms=False)
    shared = OptionScorer(backend, case_forms=False)
    expected, found = full.score(requests), shared.score(requests)
    # 6 requests x 4 options at 12 rows: full sequences in 2 passes; shared, a prompt pass and
    # an option pass per group of at most 3 requests whose encoded prompts have one shape (2
    # prompt lengths here; LLaVA-NeXT's image tokens also depend on the image's size)
    shapes = [_prompt_shapes(backend, request) for request in requests]
    groups = [shapes.count(shape) for shape in dict.fromkeys(shapes)]
    assert (full.forward_passes, shared.unshared) == (2, {})
    assert shared.forward_passes == 2 * sum(-(-n // 3) for n in groups)
    assert arch == "llava_next" or shared.forward_passes == 4
    for a, b in zip(expected, found, strict=True):
        assert (a.error, a.n_tokens, a.merged) == (b.error, b.n_tokens, b.merged)
        np.testing.assert_allclose(a.total, b.total, rtol=0, atol=1e-5)
    for option, total in zip(options, found[1].total, strict=True):
        hand, _ = hand_loglikelihood(backend, requests[1], option)
        assert total == pytest.approx(hand, abs=1e-5)


def test_option_scorer_single_token_options_need_only_the_prompt_pass(
    tiny_gemma3_dir: Path, sample_images: list[Path], open_backend: Any
) -> None:
    backend = open_backend("gemma3", tiny_gemma3_dir)
    tokenizer = backend._loaded.tokenizer
    letters = ("A", "B", "C")
    text = backend.prompt(requests_for(sample_images[:1])[0].messages)
    head = tokenizer(text, add_special_tokens=False)["input_ids"]
    for letter in letters:  # each letter adds exactly one token after the prompt
        assert len(tokenizer(text + letter, add_special_tokens=False)["input_ids"]) == len(head) + 1
    requests = requests_for(sample_images[:2], letters)
    shared = OptionScorer(backend, case_forms=False)
    found = shared.score(requests)
    assert shared.forward_passes == 1 and all(s.n_tokens == (1, 1, 1) for s in found)
    expected = OptionScorer(backend, share_prefix=False, case_forms=False).score(requests)
    for a, b in zip(expected, found, strict=True):
        np.testing.assert_allclose(a.total, b.total, rtol=0, atol=1e-5)


@pytest.mark.parametrize("window", [8, 20])
def test_option_scorer_shares_the_prefix_past_a_sliding_window_shorter_than_the_prompt(
    window: int, tiny_gemma3_dir: Path, sample_images: list[Path], open_backend: Any
) -> None:
    backend = open_backend("gemma3", tiny_gemma3_dir)
    requests = requests_for(sample_images[:2])
    scorer = OptionScorer(backend, case_forms=False)
    assert all(scorer._encode(0, r).prompt["input_ids"].shape[1] > 20 for r in requests)
    default = [
        s.total for s in OptionScorer(backend, share_prefix=False, case_forms=False).score(requests)
    ]
    backend._loaded.model.config.text_config.sliding_window = window  # the model's own too
    expected = OptionScorer(backend, share_prefix=False, case_forms=False).score(requests)
    assert [s.total for s in expected] != default  # the window does change the scores
    found = scorer.score(requests)
    assert (scorer.unshared, scorer.forward_passes) == ({}, 2)
    for a, b in zip(expected, found, strict=True):
        np.testing.assert_allclose(a.total, b.total, rtol=0, atol=1e-5)


def test_option_scorer_falls_back_to_full_sequences_without_a_kv_cache(
    tiny_gemma3_dir: Path, sample_images: list[Path], open_backend: Any
) -> None:
    backend = open_backend("gemma3", tiny_gemma3_dir)
    requests = requests_for(sample_images[:2])
    expected = OptionScorer(backend, share_prefix=False, case_forms=False).score(requests)
    model = backend._loaded.model
    forward = model.forward

    def without_cache(*args: Any, **kwargs: Any) -> Any:
        out = forward(*args, **kwargs)
        out.past_key_values = None
        return out

    model.forward = without_cache
    scorer = OptionScorer(backend, case_forms=False)
    found = scorer.score(requests)
    # the prompt pass that returned no cache, then the batch again as full sequences
    assert (scorer.unshared, scorer.forward_passes) == ({"the model returned no KV cache": 2}, 2)
    assert [s.total for s in found] == [s.total for s in expected]


def test_option_scorer_batches_at_least_auto_rows_when_the_batch_size_is_automatic(
    tiny_gemma3_dir: Path, sample_images: list[Path]
) -> None:
    context = BackendContext(device="cpu", checkpoint_dir=tiny_gemma3_dir)
    backend = HFBackend(tiny_model_spec("gemma3", dtype="float32"), context)
    try:
        scorer = OptionScorer(backend, share_prefix=False, case_forms=False)
        assert (backend.batch_size, scorer.rows) == (1, AUTO_ROWS)
        scorer.score(requests_for(sample_images[:4], ("yes", "no")))
        assert scorer.forward_passes == 1
        shared = OptionScorer(
            backend, case_forms=False
        )  # the four prompts' pass, then the options' pass
        shared.score(requests_for(sample_images[:4], ("yes", "no")))
        assert shared.forward_passes == 2
    finally:
        backend.close()


def test_option_scorer_reports_an_undecodable_image_and_scores_the_rest(
    tiny_gemma3_dir: Path, sample_images: list[Path], open_backend: Any, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    requests = requests_for([sample_images[0], broken])
    scores = OptionScorer(open_backend("gemma3", tiny_gemma3_dir)).score(requests)
    assert scores[0].error is None and len(scores[0].total) == 3
    assert scores[1] == OptionScores(SHARED_PREFIX, error=scores[1].error)
    assert scores[1].error is not None and scores[1].error.startswith("ImageError: ")


@pytest.mark.parametrize("share_prefix", [False, True])
def test_option_scorer_retries_alone_the_requests_of_a_batch_out_of_memory(
    share_prefix: bool, tiny_gemma3_dir: Path, sample_images: list[Path], open_backend: Any
) -> None:
    requests = requests_for(sample_images[:3])
    backend = open_backend("gemma3", tiny_gemma3_dir, batch_size=9)
    scorer = OptionScorer(backend, share_prefix=share_prefix, case_forms=False)
    expected = [s.total for s in scorer.score(requests)]
    name = "_forward_shared" if share_prefix else "_forward"
    real, sizes, fits = getattr(scorer, name), [], [1]

    def forward(batch: list[Any]) -> list[list[float]]:
        sizes.append(len(batch))
        if len(batch) not in fits:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(batch)

    setattr(scorer, name, forward)
    retried = scorer.score(requests)
    assert sizes == [3, 1, 1, 1]
    for a, b in zip(retried, expected, strict=True):  # alone or batched: equal to 1e-6
        np.testing.assert_allclose(a.total, b, rtol=0, atol=1e-6)
    fits.clear()  # now a request's options alone run out of memory
    again = scorer.score(requests[:2])
    assert [s.error for s in again] == [
        "out of memory scoring 3 options: CUDA out of memory (simulated)"
    ] * 2


@pytest.mark.parametrize("share_prefix", [False, True])
def test_option_scorer_retries_after_the_failed_batch_memory_is_released(
    share_prefix: bool, tiny_gemma3_dir: Path, sample_images: list[Path], open_backend: Any
) -> None:
    from tests.run.test_hf_backend import FakeGPU

    requests = requests_for(sample_images[:3])
    scorer = OptionScorer(
        open_backend("gemma3", tiny_gemma3_dir, batch_size=9),
        share_prefix=share_prefix,
        case_forms=False,
    )
    expected = [s.total for s in scorer.score(requests)]
    name = "_forward_shared" if share_prefix else "_forward"
    real, sizes, gpu = getattr(scorer, name), [], FakeGPU(capacity=1)

    def forward(batch: list[Any]) -> list[list[float]]:
        sizes.append(len(batch))
        activations = gpu.allocate(len(batch))  # held by this frame until it returns
        if gpu.live > gpu.capacity:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        del activations
        return real(batch)

    setattr(scorer, name, forward)
    retried = scorer.score(requests)
    assert [s.error for s in retried] == [None] * 3
    assert sizes == [3, 1, 1, 1]
    for a, b in zip(retried, expected, strict=True):
        np.testing.assert_allclose(a.total, b, rtol=0, atol=1e-6)
    assert gpu.live == 0


# the job kind and the stage


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = make_project(
        tmp_path,
        families=("closed_diagnosis", "finding_present"),
        models=("tiny-gemma3", "baseline-chance"),
        limit_per_class=2,
    )
    suite = project / "specs/suites/t.yaml"
    suite.write_text(suite.read_text() + "likelihood: {}\n")
    return project


def test_likelihood_jobs_mirror_closed_direct_jobs_with_their_own_keys(
    project: Path, tmp_path: Path
) -> None:
    specs = load_specs(project / "specs")
    plan = make_plan(specs, "t", models_dir=tmp_path / "models")
    jobs, skipped = likelihood_jobs(plan, specs)
    direct = [j for j in plan.jobs if j.model == "tiny-gemma3"]
    # 4 images x (8 closed_diagnosis + 6 finding_present variants); the baseline is left out
    assert (len(jobs), len(direct), skipped) == (56, 56, {})
    assert {j.pipeline for j in jobs} == {"likelihood"}
    assert not {j.key for j in jobs} & {j.key for j in plan.jobs}
    # the options are part of the key: `reversed` offers the same options in another order
    keys = {(j.variant, j.sample): j.key for j in jobs if j.family == "closed_diagnosis"}
    assert len(set(keys.values())) == len(keys)


def test_likelihood_key_ignores_decoding_parameters(project: Path, tmp_path: Path) -> None:
    specs = load_specs(project / "specs")
    before, _ = likelihood_jobs(make_plan(specs, "t", models_dir=tmp_path / "models"), specs)
    model = project / "specs/models/tiny-gemma3.yaml"
    text = model.read_text()
    assert "generation: {max_new_tokens: 12, do_sample: false}" in text
    model.write_text(text.replace("max_new_tokens: 12", "max_new_tokens: 3"))
    specs = load_specs(project / "specs")
    plan = make_plan(specs, "t", models_dir=tmp_path / "models")
    after, _ = likelihood_jobs(plan, specs)
    assert [j.key for j in before] == [j.key for j in after]
    assert {j.key for j in plan.jobs if j.model == "tiny-gemma3"}.isdisjoint(j.key for j in after)


def test_likelihood_stage_scores_stores_and_a_cached_rerun_makes_no_forward_pass(
    project: Path, tmp_path: Path
) -> None:
    specs = load_specs(project / "specs")
    context = BackendContext(device="cpu")
    with Cache(tmp_path / "cache" / "answers.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "cache" / "models")
        first = compute_likelihoods(plan, specs, cache, context)
        assert (first.planned, first.cached, first.ran, first.failed) == (56, 0, 56, 0)
        assert first.forward_passes > 0
        again = compute_likelihoods(plan, specs, cache, context)
        assert (again.cached, again.ran, again.forward_passes) == (56, 0, 0)
        items = collect_likelihoods(specs, plan, cache)
        answers = collect_answers(specs, plan, cache)
        result = run_likelihood_stage(
            specs, plan, cache, answers, make_layout(specs, plan), tmp_path / "out", context
        )
    assert result.run.forward_passes == 0
    assert len(items) == 56
    row = items[(items["family"] == "closed_diagnosis") & (items["variant"] == "lettered")].iloc[0]
    assert json.loads(row["options"]) == ["A", "B"]
    assert json.loads(row["classes"]) == ["pneumonia", "normal"]
    yes_no = items[items["family"] == "finding_present"].iloc[0]
    assert json.loads(yes_no["options"]) == ["yes", "no"]
    scores = result.tables.scores
    assert set(scores["pipeline"]) == {"likelihood/total", "likelihood/mean"}
    assert (scores["refusal_rate"] == 0).all() and (scores["n"] == 4).all()
    folder = tmp_path / "out" / "likelihood"
    assert sorted(p.name for p in folder.iterdir()) == [
        "calibration.csv",
        "fragility.csv",
        "items.csv",
        "moves.csv",
        "reliability",
        "risk_coverage.csv",
        "scores.csv",
    ]
    curves = pd.read_csv(folder / "risk_coverage.csv")
    pooled_curve = curves[(curves["variant"] == "*") & (curves["pipeline"] == "likelihood/total")]
    assert set(pooled_curve["family"]) == {"closed_diagnosis", "finding_present"}
    assert (pooled_curve.groupby(["task", "family"])["coverage"].max() == 1.0).all()
    svg = (folder / "reliability" / "tiny-gemma3" / "pneumonia_cxr.svg").read_text()
    assert "<title>tiny-gemma3 on pneumonia_cxr: reliability of option probabilities" in svg
    calib = result.calibration
    pooled = calib[(calib["variant"] == "*") & (calib["pipeline"] == "likelihood/total")]
    assert sorted(pooled["family"]) == ["closed_diagnosis", "finding_present"]
    assert list(pooled["n"]) == [32, 24]


def test_likelihood_stage_without_a_context_scores_only_what_is_cached(
    project: Path, tmp_path: Path
) -> None:
    specs = load_specs(project / "specs")
    with Cache(tmp_path / "answers.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "models")
        run = compute_likelihoods(plan, specs, cache, None)
        assert (run.planned, run.cached, run.ran, run.forward_passes) == (56, 0, 0, 0)
        assert collect_likelihoods(specs, plan, cache).empty


def test_likelihood_answer_round_trips_through_json() -> None:
    answer = LikelihoodAnswer(("yes", "no"), (-1.5, -0.25), (2, 1), (False, False))
    text = answer.to_json()
    assert json.loads(text)["mode"] == "reply_tokens_cased"
    assert LikelihoodAnswer.from_json(text) == answer
    assert answer.mean == (-0.75, -0.25)


def test_answers_frame_takes_the_argmax_of_each_normalisation() -> None:
    # `no tumor` is the likelier reply in total, `glioma` per token
    items = pd.DataFrame(
        [
            {
                "model": "m",
                "task": "t",
                "family": "f",
                "variant": "plain",
                "sample": "s1",
                "label": "glioma",
                "truth": "glioma",
                "truth_option": 1,
                "options": json.dumps(["no tumor", "glioma"]),
                "classes": json.dumps(["no_tumor", "glioma"]),
                "total": json.dumps([-2.0, -3.0]),
                "mean": json.dumps([-1.0, -0.75]),
                "n_tokens": json.dumps([2, 4]),
                "merged": False,
                "group": None,
            }
        ]
    )
    total, mean = answers_frame(items, "total"), answers_frame(items, "mean")
    assert (total["parsed"].iloc[0], bool(total["correct"].iloc[0])) == ("no_tumor", False)
    assert (mean["parsed"].iloc[0], bool(mean["correct"].iloc[0])) == ("glioma", True)
    assert (list(total["pipeline"]), list(mean["rule"])) == (["likelihood/total"], ["argmax_mean"])


def test_run_command_computes_then_score_command_rereads_the_likelihood_stage(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from medbench.cli import app

    monkeypatch.chdir(project)
    cache = tmp_path / "cache" / "answers.sqlite"
    common = ["specs", "--suite", "t", "--cache", str(cache), "--results", "results"]
    run = CliRunner().invoke(app, ["run", *common, "--no-site", "--device", "cpu"])
    assert run.exit_code == 0, run.output
    assert "likelihood: 56 jobs planned: 0 cached, 56 ran, 0 failed" in run.output
    assert "  tiny-gemma3 / pneumonia_cxr: likelihood f1_all " in run.output
    first = (project / "results/t/likelihood/calibration.csv").read_bytes()
    again = CliRunner().invoke(app, ["score", *common])
    assert again.exit_code == 0, again.output
    assert "likelihood: 56 jobs planned: 56 cached, 0 ran, 0 failed, 0 forward passes." in (
        again.output
    )
    assert (project / "results/t/likelihood/calibration.csv").read_bytes() == first
    pruned = CliRunner().invoke(app, ["cache", "prune", "--cache", str(cache), "--dry-run"])
    assert pruned.exit_code == 0, pruned.output
    assert pruned.stdout == "0 rows would be removed (dry run: nothing removed).\n"


def test_likelihood_jobs_leave_out_image_variants(project: Path, tmp_path: Path) -> None:
    suite = project / "specs/suites/t.yaml"
    suite.write_text(suite.read_text() + "image_variants:\n  - {id: flip, transform: flip}\n")
    specs = load_specs(project / "specs")
    plan = make_plan(specs, "t", models_dir=tmp_path / "models", images_dir=tmp_path / "images")
    jobs, _ = likelihood_jobs(plan, specs)
    assert any(j.image_variant == "flip" for j in plan.jobs)
    assert len(jobs) == 56
    assert {j.image_variant for j in jobs} == {"original"}


def test_run_command_publishes_reliability_diagrams_and_calibration_on_the_model_page(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from medbench.cli import app
    from medbench.publish.reading import read_record

    suite = project / "specs/suites/t.yaml"
    suite.write_text(suite.read_text() + "probe: {}\n")  # for the ladder
    monkeypatch.chdir(project)
    cache = tmp_path / "cache" / "answers.sqlite"
    common = ["specs", "--suite", "t", "--cache", str(cache), "--results", "results"]
    run = CliRunner().invoke(app, ["run", *common, "--device", "cpu"])
    assert run.exit_code == 0, run.output
    # published beside the local record: the diagram, and the stage's calibration rows
    record_path = project / "results/t/leaderboard/t/tiny-gemma3.json"
    published = record_path.with_name("tiny-gemma3.reliability") / "pneumonia_cxr.svg"
    written = project / "results/t/likelihood/reliability/tiny-gemma3/pneumonia_cxr.svg"
    assert published.read_bytes() == written.read_bytes()
    calibration = pd.read_csv(project / "results/t/likelihood/calibration.csv")
    mine = calibration[calibration["model"] == "tiny-gemma3"]
    record = read_record(record_path)
    # (8 closed_diagnosis variants + `*`, 6 finding_present variants + `*`) x 2 normalisations
    assert record.calibration is not None and len(record.calibration) == len(mine) == 32
    pooled = mine[(mine["variant"] == "*") & (mine["pipeline"] == "likelihood/total")]
    by_family = {
        r["family"]: r
        for r in record.calibration
        if r["variant"] == "*" and r["pipeline"] == "likelihood/total"
    }
    for row in pooled.to_dict("records"):
        for name in ("n", "accuracy", "ece", "brier", "aurc"):
            assert by_family[row["family"]][name] == pytest.approx(row[name], abs=1e-9)
    assert read_record(project / "results/t/leaderboard/t/baseline-chance.json").calibration is None
    # the calibration is re-derived from the option scores published beside the record
    from medbench.publish.verify import verify_records

    assert record.likelihood_sidecar is not None
    assert record_path.with_name(record.likelihood_sidecar.path).is_file()
    assert verify_records(project / "results/t/leaderboard") == []
    # on the site: the diagram (rebuilt from the SVG allow-list) and the calibration table
    chart = project / "_site/charts/t~tiny-gemma3~reliability~pneumonia_cxr.svg"
    svg = chart.read_text()
    assert "<title>tiny-gemma3 on pneumonia_cxr: reliability of option probabilities" in svg
    assert "<script" not in svg
    page = (project / "_site/models/tiny-gemma3.html").read_text()
    assert '<img src="../charts/t~tiny-gemma3~reliability~pneumonia_cxr.svg" alt=' in page
    assert "t: calibration of the option probabilities" in page
    data = json.loads((project / "_site/data/t~tiny-gemma3~calibration.json").read_text())
    assert len(data) == 32 and {r["pipeline"] for r in data} == {
        "likelihood/total",
        "likelihood/mean",
    }
    # the likelihood rung on the ladder, between the generated answers and the probe
    ladder = pd.read_csv(project / "results/t/ladder.csv")
    expected = ladder[ladder["model"] == "tiny-gemma3"]["likelihood_f1_mean"].iloc[0]
    assert record.ladder is not None
    assert record.ladder[0]["likelihood_f1_mean"] == pytest.approx(expected, abs=1e-9)
    assert "t: knowledge ladder (chance, generated answers, likelihood answers" in page
    assert (
        '<th scope="col" data-key="likelihood_f1_mean" data-type="number">'
        '<span class="h">likelihood f1 mean</span> '
        '<a class="def" href="../methods.html#rung-likelihood"'
    ) in page
    assert "reliability" not in (project / "_site/models/baseline-chance.html").read_text()
    # verify re-derives the rung from the option scores: a forged value is named
    forged = json.loads(record_path.read_text())
    forged["ladder"][0]["likelihood_f1_mean"] = 0.99
    forged_folder = tmp_path / "forged" / "t"
    shutil.copytree(record_path.parent, forged_folder)
    (forged_folder / record_path.name).write_text(json.dumps(forged))
    # (the reading the forged column gives is named too)
    [problem] = [p for p in verify_records(tmp_path / "forged") if "likelihood_f1_mean" in p]
    head, derived = problem.rsplit(" re-derived ", 1)
    assert head.endswith("forged/t/tiny-gemma3.json: ladder[0].likelihood_f1_mean: recorded 0.99,")
    assert float(derived) == pytest.approx(expected, abs=1e-9)
    # one rule for what the site shows: `site build` after `run` gives the same site
    from medbench.publish.site import build_site

    build_site(
        Path("leaderboard"),
        project / "_again",
        specs=load_specs(project / "specs"),
        results=Path("results"),
    )
    tree = {
        p.relative_to(project / "_site"): p.read_bytes()
        for p in (project / "_site").rglob("*")
        if p.is_file()
    }
    again = {
        p.relative_to(project / "_again"): p.read_bytes()
        for p in (project / "_again").rglob("*")
        if p.is_file()
    }
    assert again == tree


def test_likelihood_run_lines_say_which_requests_did_not_share_their_prefix() -> None:
    from medbench.score.likelihood import LikelihoodRun

    run = LikelihoodRun(planned=4, ran=4, forward_passes=3)
    run.unshared["m"] = {"the model returned no KV cache": 2}
    assert run.lines() == [
        "likelihood: 4 jobs planned: 0 cached, 4 ran, 0 failed, 3 forward passes.",
        "  m: 2 requests scored without a shared prefix: the model returned no KV cache.",
    ]


def _item(
    sample: str, truth: int, probs: tuple[float, float], variant: str = "plain"
) -> dict[str, Any]:
    return {
        "model": "m",
        "task": "t",
        "family": "f",
        "variant": variant,
        "sample": sample,
        "label": ["a", "b"][truth],
        "truth": ["a", "b"][truth],
        "truth_option": truth,
        "options": json.dumps(["a", "b"]),
        "classes": json.dumps(["a", "b"]),
        "total": json.dumps([float(np.log(p)) for p in probs]),
        "mean": json.dumps([float(np.log(p)) for p in probs]),
        "n_tokens": json.dumps([1, 1]),
        "merged": False,
        "group": None,
    }


def test_risk_coverage_curves_list_each_threshold_with_its_coverage_and_risk() -> None:
    # right at 0.9, wrong at 0.8, right at 0.6
    items = pd.DataFrame(
        [_item("s1", 0, (0.9, 0.1)), _item("s2", 1, (0.8, 0.2)), _item("s3", 1, (0.4, 0.6))]
    )
    curves = risk_coverage_curves(items, "total")
    assert sorted(set(curves["variant"])) == ["*", "plain"]
    plain = curves[curves["variant"] == "plain"]
    assert list(plain["pipeline"]) == ["likelihood/total"] * 3
    np.testing.assert_allclose(plain["threshold"], [0.9, 0.8, 0.6], atol=1e-12)
    np.testing.assert_allclose(plain["coverage"], [1 / 3, 2 / 3, 1.0], atol=1e-12)
    np.testing.assert_allclose(plain["risk"], [0.0, 0.5, 1 / 3], atol=1e-12)
    assert risk_coverage_curves(items.iloc[:0], "total").empty


def test_moves_separate_a_moving_preference_from_a_moving_answer() -> None:
    def said(sample: str, variant: str, status: str, parsed: str | None) -> dict[str, Any]:
        return {
            "model": "m",
            "task": "t",
            "family": "f",
            "pipeline": "direct",
            "variant": variant,
            "sample": sample,
            "status": status,
            "parsed": parsed,
        }

    generated = pd.DataFrame(
        [
            said("s1", "a", "answer", "x"),  # the answer stays, the preference moves
            said("s1", "b", "answer", "x"),
            said("s2", "a", "answer", "x"),  # the answer moves (to a refusal), the preference stays
            said("s2", "b", "refusal", None),
            said("s3", "a", "answer", "y"),  # neither moves
            said("s3", "b", "answer", "y"),
            said("s4", "a", "answer", "x"),  # not asked under every variant: left out
        ]
    )
    lk = [("s1", "a", "x"), ("s1", "b", "y"), ("s2", "a", "x"), ("s2", "b", "x")]
    lk += [("s3", "a", "y"), ("s3", "b", "y"), ("s4", "a", "x"), ("s4", "b", "y")]
    likelihood = pd.DataFrame(
        [
            {"model": "m", "task": "t", "family": "f", "pipeline": "likelihood/total"}
            | {"sample": s, "variant": v, "parsed": p}
            for s, v, p in lk
        ]
    )
    row = moves(generated, likelihood).to_dict("records")
    assert row == [
        {
            "model": "m",
            "task": "t",
            "family": "f",
            "pipeline": "likelihood/total",
            "n": 3,
            "generated_flip_rate": 1 / 3,
            "likelihood_flip_rate": 1 / 3,
            "preference_moves_only": 1 / 3,
            "answer_moves_only": 1 / 3,
        }
    ]
