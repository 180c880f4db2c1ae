"""Tests of PEFT adapters and `device_map`: the spec fields and their located errors, the
identity (the adapter's sha or file hash), and the hf backend applying a LoRA adapter built
here on a tiny model (answers and option likelihoods change, as peft itself computes them)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from huggingface_hub import constants

from medbench.data.images import sha256_file
from medbench.errors import BackendError
from medbench.run.backends.base import BackendContext, Request
from medbench.run.backends.hf import HFBackend
from medbench.run.backends.hf import loading as hf_loading
from medbench.run.backends.hf.likelihood import OptionScorer
from medbench.run.identity import resolve_identity
from medbench.spec.loading import load_specs
from medbench.spec.prompts import ImageRef, Messages
from tests.spec.test_loading import GENERAL_MODEL, load_error, write_tree
from tests.spec_tree import tiny_model_spec

QUESTION = "Does this image show a tumour? Answer with one of: glioma, meningioma, no tumor."
OPTIONS = ("glioma", "meningioma", "no tumor")
ADAPTER_REPO = "medbench-test/tiny-llava-lora"
ADAPTER_SHA = "c" * 40


def build_lora(base: Path, out: Path, seed: int = 0) -> Path:
    """A LoRA adapter over the tiny model in `base` with random (non-zero) A and B matrices,
    saved by peft as it saves any adapter."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_pretrained(base)
    config = LoraConfig(
        r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    get_peft_model(model, config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def lora_dir(tiny_llava_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lora(tiny_llava_dir, tmp_path_factory.mktemp("lora") / "adapter")


@pytest.fixture
def images(sample_images: list[Path]) -> list[Path]:
    step = len(sample_images) // 4
    return sample_images[::step][:4]


def requests_for(images: list[Path]) -> list[Request]:
    return [
        Request(f"k{i}", Messages(None, QUESTION, (ImageRef(str(p), sha256_file(p)),)), OPTIONS)
        for i, p in enumerate(images)
    ]


@pytest.fixture
def open_backend() -> Iterator[Any]:
    opened: list[HFBackend] = []

    def open_(folder: Path, adapter_dir: Path | None = None, **fields: Any) -> HFBackend:
        if adapter_dir is not None:
            fields["adapter"] = {"path": "data/adapters/lora"}
        spec = tiny_model_spec("llava", dtype="float32", generation={"max_new_tokens": 8}, **fields)
        context = BackendContext(
            device="cpu", batch_size=4, checkpoint_dir=folder, adapter_dir=adapter_dir
        )
        backend = HFBackend(spec, context)
        opened.append(backend)
        return backend

    yield open_
    for backend in opened:
        backend.close()


# --- the backend ---------------------------------------------------------------------------


def test_hf_backend_adapter_changes_the_answers(
    tiny_llava_dir: Path, lora_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    requests = requests_for(images)
    plain = [o.text for o in open_backend(tiny_llava_dir).generate(requests)]
    adapted = open_backend(tiny_llava_dir, lora_dir).generate(requests)
    assert [o.error for o in adapted] == [None] * 4
    assert [o.text for o in adapted] != plain


def peft_loglikelihood(
    base: Path, adapter: Path, backend: HFBackend, image_path: Path, option: str
) -> float:
    """The option's log-likelihood under peft's own, unmerged adapter (one unpadded pass)."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from medbench.data.images import load_image
    from medbench.run.backends.hf.chat import conversation

    model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(base), adapter)
    model.eval()
    processor, tokenizer = backend._loaded.processor, backend._loaded.tokenizer
    image = load_image(str(image_path))
    turns = conversation(None, QUESTION, [image], system_role=backend.system_role)
    inputs = dict(
        processor.apply_chat_template(
            turns, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )
    )
    # the reply as the tiny LLaVA template writes it: a space after `ASSISTANT:`
    text = processor.apply_chat_template(
        conversation(None, QUESTION, [None], system_role=backend.system_role),
        add_generation_prompt=True,
        tokenize=False,
    )
    head = tokenizer(text, add_special_tokens=False)["input_ids"]
    option_ids = tokenizer(text + " " + option, add_special_tokens=False)["input_ids"][len(head) :]
    n = inputs["input_ids"].shape[1]
    inputs["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([option_ids])], dim=1)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(**inputs).logits[0].double(), dim=-1)
    return sum(float(logprobs[n - 1 + j, t]) for j, t in enumerate(option_ids))


def test_option_scorer_with_an_adapter_equals_peft_unmerged(
    tiny_llava_dir: Path, lora_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    request = requests_for(images[:1])[0]
    adapted = open_backend(tiny_llava_dir, lora_dir)
    plain = OptionScorer(open_backend(tiny_llava_dir), case_forms=False).score([request])[0]
    scores = OptionScorer(adapted, case_forms=False).score([request])[0]
    assert scores.error is None
    want = [peft_loglikelihood(tiny_llava_dir, lora_dir, adapted, images[0], o) for o in OPTIONS]
    assert scores.total == pytest.approx(want, rel=1e-4, abs=1e-4)
    assert max(abs(a - b) for a, b in zip(scores.total, plain.total, strict=True)) > 1e-2


def test_hf_backend_adapter_folder_without_safetensors_is_an_error(
    tiny_llava_dir: Path, lora_dir: Path, open_backend: Any, tmp_path: Path
) -> None:
    broken = tmp_path / "adapter"
    broken.mkdir()
    shutil.copy(lora_dir / "adapter_config.json", broken)
    with pytest.raises(BackendError, match=r"lacks adapter_model\.safetensors"):
        open_backend(tiny_llava_dir, broken)


def edited_adapter(lora_dir: Path, out: Path, edit: str) -> Path:
    """A copy of the adapter with one tensor dropped (`missing`) or one more for a module the
    base model does not have (`unexpected`)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(lora_dir, out)
    tensors = load_file(out / "adapter_model.safetensors")
    name = sorted(tensors)[0]
    if edit == "missing":
        del tensors[name]
    else:
        tensors[name.replace("layers.0.", "layers.99.")] = tensors[name].clone()
    save_file(tensors, out / "adapter_model.safetensors", metadata={"format": "pt"})
    return out


@pytest.mark.parametrize("edit", ["missing", "unexpected"])
def test_hf_backend_adapter_with_mismatched_keys_is_refused(
    edit: str, tiny_llava_dir: Path, lora_dir: Path, open_backend: Any, tmp_path: Path
) -> None:
    from safetensors import safe_open

    broken = edited_adapter(lora_dir, tmp_path / "adapter", edit)
    with safe_open(str(lora_dir / "adapter_model.safetensors"), framework="pt") as weights:
        name = sorted(weights.keys())[0]
    key = name if edit == "missing" else name.replace("layers.0.", "layers.99.")
    message = (
        f"model tiny-llava: the adapter in {broken} does not fit the base model: 1 {edit} key(s), "
        f"e.g. {key}; it was saved for other weights (or another layout of them): use the "
        "adapter made for this base"
    )
    with pytest.raises(BackendError) as raised:
        open_backend(tiny_llava_dir, broken)
    assert str(raised.value) == message


def test_hf_backend_device_map_reaches_from_pretrained_and_the_model_is_not_moved(
    tiny_llava_dir: Path, open_backend: Any, images: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = requests_for(images)
    plain = [o.text for o in open_backend(tiny_llava_dir).generate(requests)]
    real = hf_loading.AutoModelForImageTextToText
    asked: list[dict[str, Any]] = []

    class Spy:
        @staticmethod
        def from_pretrained(source: str, **kwargs: Any) -> Any:
            asked.append(kwargs)
            model = real.from_pretrained(source, **kwargs)

            def no_move(*_: Any, **__: Any) -> Any:
                raise AssertionError("a model placed by device_map was moved with .to()")

            model.to = no_move
            return model

    monkeypatch.setattr(hf_loading, "AutoModelForImageTextToText", Spy)
    backend = open_backend(tiny_llava_dir, device_map="auto")
    assert [kwargs["device_map"] for kwargs in asked] == ["auto"]
    assert backend._loaded.device == torch.device("cpu")
    backend.set_batch_size(2)  # batching still works, and gives the same answers
    assert [o.text for o in backend.generate(requests)] == plain


# --- the identity ----------------------------------------------------------------------------


def project_with_adapter(tmp_path: Path, lora_dir: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(lora_dir, root / "data" / "adapters" / "lora")
    return root


def files_hash(folder: Path) -> str:
    """The hash a local checkpoint gets: its files' names and sha256s, in name order."""
    lines = "".join(
        f"{p.name}\t{hashlib.sha256(p.read_bytes()).hexdigest()}\n"
        for p in sorted(folder.iterdir())
        if p.suffix in (".json", ".safetensors")
    )
    return hashlib.sha256(lines.encode()).hexdigest()


def test_resolve_identity_local_adapter_adds_its_files_hash(tmp_path: Path, lora_dir: Path) -> None:
    root = project_with_adapter(tmp_path, lora_dir)
    plain = resolve_identity(tiny_model_spec("llava"), root, tmp_path / "models")
    spec = tiny_model_spec("llava", adapter={"path": "data/adapters/lora"})
    adapted = resolve_identity(spec, root, tmp_path / "models")
    digest = files_hash(root / "data" / "adapters" / "lora")
    assert "adapter" not in plain.payload["weights"]
    assert adapted.payload["weights"] == {
        **plain.payload["weights"],
        "adapter": {"checkpoint": digest},
    }
    assert {k: v for k, v in adapted.payload.items() if k != "weights"} == {
        k: v for k, v in plain.payload.items() if k != "weights"
    }
    assert (adapted.adapter_revision, adapted.adapter_dir) == (
        f"local:{digest}",
        root / "data" / "adapters" / "lora",
    )
    context = adapted.context(BackendContext())
    assert (context.adapter_dir, context.adapter_revision) == (adapted.adapter_dir, None)
    # other adapter weights, another identity
    (root / "data" / "adapters" / "lora" / "adapter_model.safetensors").write_bytes(b"other")
    assert resolve_identity(spec, root, tmp_path / "models").payload != adapted.payload


def test_resolve_identity_local_adapter_through_a_link_out_of_the_data_root_fails(
    tmp_path: Path, lora_dir: Path
) -> None:
    root = tmp_path / "project"
    (root / "data" / "adapters").mkdir(parents=True)
    (root / "data" / "adapters" / "lora").symlink_to(lora_dir)
    spec = tiny_model_spec("llava", adapter={"path": "data/adapters/lora"})
    with pytest.raises(Exception, match=r"outside the data root"):
        resolve_identity(spec, root, tmp_path / "models")


@pytest.fixture
def adapter_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lora_dir: Path) -> Path:
    """An offline HF cache holding ADAPTER_REPO's `main` at ADAPTER_SHA, as a download leaves it."""
    cache = tmp_path / "hub"
    repo = cache / f"models--{ADAPTER_REPO.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(ADAPTER_SHA)
    shutil.copytree(lora_dir, repo / "snapshots" / ADAPTER_SHA)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_hub_adapter_resolves_its_sha_and_loads_exactly_it(
    adapter_hub: Path, tiny_llava_dir: Path, tmp_path: Path, images: list[Path]
) -> None:
    spec = tiny_model_spec(
        "llava",
        dtype="float32",
        generation={"max_new_tokens": 8},
        adapter={"repo": ADAPTER_REPO, "revision": "main"},
    )
    identity = resolve_identity(spec, tmp_path, tmp_path / "models")
    assert identity.payload["weights"]["adapter"] == {"repo": ADAPTER_REPO, "revision": ADAPTER_SHA}
    context = identity.context(BackendContext(device="cpu", batch_size=4))
    assert (context.adapter_dir, context.adapter_revision) == (None, ADAPTER_SHA)
    folder = adapter_hub / f"models--{ADAPTER_REPO.replace('/', '--')}" / "snapshots"
    local = tiny_model_spec(
        "llava", dtype="float32", generation={"max_new_tokens": 8}, adapter={"path": "data/x"}
    )
    requests = requests_for(images)
    hub = HFBackend(spec, replace_checkpoint(context, tiny_llava_dir))
    by_path = HFBackend(
        local,
        BackendContext(
            device="cpu",
            batch_size=4,
            checkpoint_dir=tiny_llava_dir,
            adapter_dir=folder / ADAPTER_SHA,
        ),
    )
    try:
        assert [o.text for o in hub.generate(requests)] == [
            o.text for o in by_path.generate(requests)
        ]
    finally:
        hub.close()
        by_path.close()


def replace_checkpoint(context: BackendContext, folder: Path) -> BackendContext:
    from dataclasses import replace

    return replace(context, checkpoint_dir=folder)


# --- the specs -------------------------------------------------------------------------------

ADAPTER_MODEL = """\
schema_version: 1
kind: model
id: med-a
title: Medical A
backend: hf
family: llava
repo: example/gen-a
base: gen-a
medical: true
adapter:
  repo: example/med-a-lora
  revision: v1
device_map: auto
"""


def test_load_specs_adapter_and_device_map_load(tmp_path: Path) -> None:
    specs = load_specs(write_tree(tmp_path, {"specs/models/med-a.yaml": ADAPTER_MODEL}))
    model = specs.models["med-a"]
    assert model.adapter is not None
    assert (model.adapter.repo, model.adapter.revision, model.device_map) == (
        "example/med-a-lora",
        "v1",
        "auto",
    )
    assert specs.warnings == {}


def test_model_spec_dump_leaves_out_unset_adapter_and_device_map() -> None:
    dumped = tiny_model_spec("llava").model_dump(mode="json")
    assert "adapter" not in dumped and "device_map" not in dumped
    dumped = tiny_model_spec("llava", device_map="auto").model_dump(mode="json")
    assert dumped["device_map"] == "auto" and "adapter" not in dumped


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            "adapter:\n  repo: example/lora\n  path: data/lora\n",
            "specs/models/med-a.yaml:10:3: adapter: an adapter needs exactly one of `repo` or "
            "`path`.",
        ),
        (
            "adapter:\n  path: data/lora\n  revision: main\n",
            "specs/models/med-a.yaml:10:3: adapter: `revision` needs an adapter `repo`; a "
            "`path` adapter is hashed.",
        ),
        (
            "adapter:\n  path: ../outside/lora\n",
            "specs/models/med-a.yaml:10:9: adapter.path: '../outside/lora' resolves outside the "
            "data root (data/). Write a path inside data/ or starting with ${MEDBENCH_DATA}/.",
        ),
        (
            "device_map: cuda:1\n",
            "specs/models/med-a.yaml:9:13: device_map: expected 'auto', 'balanced', "
            "'balanced_low_0' or 'sequential', got 'cuda:1'.",
        ),
    ],
)
def test_load_specs_adapter_and_device_map_errors_are_located(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    model = GENERAL_MODEL.replace("id: gen-a\ntitle: General A", "id: med-a\ntitle: Medical A")
    model += "base: gen-a\n" + change
    message = load_error(write_tree(Path(), {"specs/models/med-a.yaml": model}))
    assert expected in message.splitlines(), message


def test_load_specs_adapter_on_an_openai_model_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    model = (
        "schema_version: 1\nkind: model\nid: med-a\ntitle: Medical A\nbackend: openai\n"
        "family: gpt\nopenai: {base_url: 'https://api.example.com/v1', model: m}\n"
        "adapter: {repo: example/lora}\n"
    )
    message = load_error(write_tree(Path(), {"specs/models/med-a.yaml": model}))
    assert (
        "specs/models/med-a.yaml:1:1: `adapter` and `device_map` only apply to `backend: hf` "
        "models."
    ) in message.splitlines(), message


def test_load_specs_adapter_model_without_a_base_is_a_warning_of_its_suites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    model = ADAPTER_MODEL.replace("base: gen-a\n", "")
    specs = load_specs(write_tree(Path(), {"specs/models/med-a.yaml": model}))
    (warning,) = specs.warnings["demo"]
    assert str(warning) == (
        "specs/suites/demo.yaml:8:17: models.1: model 'med-a' applies an adapter but names no "
        "`base`: it is not compared with its weights without the adapter. Add a model spec of "
        "the same weights without `adapter`, name it in 'med-a's `base` and list it here."
    )


# --- records -----------------------------------------------------------------------------------


def test_write_record_keeps_the_adapter_revision_only_when_there_is_one(tmp_path: Path) -> None:
    import json

    from medbench.publish.reading import read_record
    from medbench.publish.verify import verify_records
    from medbench.publish.writing import write_record
    from medbench.score.scoring import score_answers
    from tests.leaderboard_data import (
        answer_keys,
        make_answers,
        make_layout,
        model_spec,
        provenance,
    )

    tasks = ["pneumonia_cxr"]
    layout = make_layout(tasks, [])
    answers = make_answers(["plain", "lora"], tasks, n_images=6)
    tables = score_answers(answers, layout)
    local = f"local:{'e' * 64}"
    for model_id, adapter in (("plain", None), ("lora", local)):
        write_record(
            tmp_path / "leaderboard",
            suite="quickstart",
            spec=model_spec(model_id),
            answers=answers,
            answer_keys=answer_keys(answers, model_id),
            tables=tables,
            layout=layout,
            provenance=provenance(tasks, n_images=6).model_copy(
                update={"adapter_revision": adapter}
            ),
        )
    folder = tmp_path / "leaderboard" / "quickstart"
    assert "adapter_revision" not in json.loads((folder / "plain.json").read_text())
    assert json.loads((folder / "lora.json").read_text())["adapter_revision"] == local
    assert read_record(folder / "lora.json").adapter_revision == local
    assert verify_records(tmp_path / "leaderboard") == []
    # the model page's provenance names it only where there is one
    from medbench.publish.site.pages import _provenance

    assert ("Adapter revision", local) in _provenance(read_record(folder / "lora.json"))
    assert "Adapter revision" not in dict(_provenance(read_record(folder / "plain.json")))


# --- the README's examples ---------------------------------------------------------------------


def readme_model_examples() -> dict[str, str]:
    """The README's example model specs: yaml blocks whose first line names their file."""
    import re

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(# (specs/models/[a-z0-9.-]+\.yaml).*?\n.*?)```", text, re.S)
    return {name: body.replace("<sha>", "0" * 40) for body, name in blocks}


def test_readme_adapter_and_vllm_model_examples_validate(tmp_path: Path) -> None:
    from tests.spec_tree import make_project

    examples = readme_model_examples()
    assert sorted(examples) == [
        "specs/models/llava-1.5-7b-radlora.yaml",
        "specs/models/medgemma-27b-it-vllm.yaml",
    ]
    project = make_project(tmp_path)
    for name, body in examples.items():
        (project / name).write_text(body, encoding="utf-8")
    specs = load_specs(project / "specs")
    lora = specs.models["llava-1.5-7b-radlora"]
    assert lora.adapter is not None and lora.base == "llava-1.5-7b"
    served = specs.models["medgemma-27b-it-vllm"].openai
    assert served is not None and served.snapshot == served.model == f"medgemma-27b-it@{'0' * 40}"


# --- a run -------------------------------------------------------------------------------------

LORA_MODEL = """\
schema_version: 1
kind: model
id: tiny-llava-lora
title: Tiny LLaVA with a LoRA adapter (test model)
backend: hf
family: llava
tiny: {arch: llava, seed: 0}
adapter: {path: data/adapters/lora}
base: tiny-llava
test_model: true
dtype: float32
generation: {max_new_tokens: 12, do_sample: false}
"""


def test_run_plan_adapter_model_answers_apart_from_its_base(tmp_path: Path, lora_dir: Path) -> None:
    from medbench.run.cache import Cache
    from medbench.run.loop import run_plan
    from medbench.run.plan import make_plan
    from tests.spec_tree import make_project

    project = make_project(tmp_path, models=("tiny-llava", "tiny-llava-lora"), limit_per_class=1)
    (project / "specs" / "models" / "tiny-llava-lora.yaml").write_text(LORA_MODEL)
    shutil.copytree(lora_dir, project / "data" / "adapters" / "lora")
    specs = load_specs(project / "specs")
    assert specs.warnings == {}
    with Cache(tmp_path / "c.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "models", hasher=cache.hash_file)
        summary = run_plan(plan, specs, cache, progress=False)
        assert (summary.failed, summary.ran) == (0, len(plan.jobs))
        answers = cache.get_many(j.key for j in plan.jobs)
    by_model: dict[str, dict[tuple[str, str], str | None]] = {}
    for job in plan.jobs:
        by_model.setdefault(job.model, {})[(job.sample, job.variant)] = answers[job.key].output
    assert not {j.key for j in plan.jobs if j.model == "tiny-llava"} & {
        j.key for j in plan.jobs if j.model == "tiny-llava-lora"
    }
    assert by_model["tiny-llava"].keys() == by_model["tiny-llava-lora"].keys()
    assert by_model["tiny-llava"] != by_model["tiny-llava-lora"]


def test_cli_plan_shows_the_adapter_revision_beside_the_weights(
    tmp_path: Path, lora_dir: Path
) -> None:
    from typer.testing import CliRunner

    from medbench.cli import app
    from tests.spec_tree import make_project

    project = make_project(tmp_path, models=("tiny-llava", "tiny-llava-lora"), limit_per_class=1)
    (project / "specs" / "models" / "tiny-llava-lora.yaml").write_text(LORA_MODEL)
    shutil.copytree(lora_dir, project / "data" / "adapters" / "lora")
    digest = files_hash(project / "data" / "adapters" / "lora")
    result = CliRunner().invoke(
        app,
        ["plan", str(project / "specs"), "--suite", "t", "--cache", str(tmp_path / "c.sqlite")],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "tiny-llava-lora" in line]
    assert rows and all(f"tiny-r1 + adapter local:{digest[:10]}" in row for row in rows), rows
