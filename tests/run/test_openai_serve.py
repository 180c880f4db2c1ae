"""The openai backend against a real OpenAI-compatible server: `transformers serve` on 127.0.0.1
serving a tiny local text model (needs the `transformers[serving]` extra: fastapi, uvicorn)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from medbench.data.images import sha256_file
from medbench.run.backends.base import BackendContext, Request
from medbench.run.backends.openai_api import OpenAIBackend
from medbench.spec.model import ModelSpec
from medbench.spec.prompts import ImageRef, Messages

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture(params=["text", "llava"])
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    """`transformers serve` pinned to a copy of a tiny model: (base URL, model folder)."""
    pytest.importorskip(
        "fastapi", reason="transformers serve needs pip install 'transformers[serving]'"
    )
    pytest.importorskip(
        "uvicorn", reason="transformers serve needs pip install 'transformers[serving]'"
    )
    tiny = request.getfixturevalue(f"tiny_{request.param}_dir")
    model = shutil.copytree(tiny, tmp_path / f"tiny-{request.param}")
    hub = tmp_path / "hub"
    hub.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(hub),
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [
        str(Path(sys.executable).parent / "transformers"),
        "serve",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
    ]
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not healthy(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1", model
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)


def test_openai_backend_answers_through_transformers_serve(
    served: tuple[str, Path], sample_images: list[Path]
) -> None:
    url, model = served
    text_only = model.name == "tiny-text"
    spec = ModelSpec.model_validate(
        {
            "schema_version": 1,
            "kind": "model",
            "id": "tiny-served",
            "title": "Tiny model behind transformers serve",
            "backend": "openai",
            "family": "llama" if text_only else "llava",
            "text_only": text_only,
            "openai": {
                "base_url": url,
                "model": str(model),
                "timeout_s": 120,
                "max_concurrency": 2,
                "max_retries": 1,
            },
            "generation": {"max_new_tokens": 6},
        }
    )
    images = () if text_only else (ImageRef(str(sample_images[0]), sha256_file(sample_images[0])),)
    question = "Is this chest X-ray normal?"
    requests = [
        Request("a", Messages(None, question, images)),
        Request("b", Messages("You are an expert radiologist.", question, images)),
        Request("c", Messages(None, question, images)),
    ]
    backend = OpenAIBackend(spec, BackendContext(extra={"openai_backoff_s": "0.1"}))
    try:
        outputs = backend.generate(requests)
        served_model, snapshot = backend.served_model, backend.snapshot
    finally:
        backend.close()
    assert [output.error for output in outputs] == [None, None, None]
    assert all(isinstance(output.text, str) for output in outputs)
    assert outputs[0].text == outputs[2].text  # greedy decoding: the same question, the same answer
    # What the identity relies on: the server names the checkpoint it was asked for (bare, or
    # with its default revision, depending on the transformers release), so no new snapshot.
    assert served_model in (str(model), f"{model}@main")
    assert snapshot is None


@pytest.mark.parametrize("served", ["text"], indirect=True)
def test_describe_pipeline_diagnoses_through_transformers_serve(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    from rich.console import Console

    from medbench.run.cache import Cache
    from medbench.run.loop import run_suite
    from medbench.run.plan import make_plan
    from medbench.score.report import score_and_report
    from medbench.spec.loading import load_specs
    from tests.spec_tree import make_project

    url, model = served
    project = make_project(tmp_path, models=("tiny-llava",), limit_per_class=1)
    (project / "specs/models/served-text.yaml").write_text(
        "schema_version: 1\nkind: model\nid: served-text\ntitle: Served tiny text model\n"
        "backend: openai\nfamily: llama\ntext_only: true\n"
        f"openai: {{base_url: '{url}', model: '{model}', timeout_s: 120, max_concurrency: 2}}\n"
        "generation: {max_new_tokens: 6}\n"
    )
    suite = project / "specs/suites/t.yaml"
    suite.write_text(
        suite.read_text() + "describe:\n  family: describe_findings\n"
        "  diagnosers: [served-text]\n  diagnose_families: [closed_diagnosis]\n"
    )
    specs = load_specs(project / "specs")
    with Cache(tmp_path / "c.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "models", hasher=cache.hash_file)
        first = run_suite(plan, specs, cache, progress=False)
        diagnoses = [j for j in plan.jobs if j.model == "served-text"]
        assert len(diagnoses) == 2 * 2 * 7  # images x describe variants x closed variants
        assert first.failed == 0
        out = score_and_report(specs, plan, cache, tmp_path / "results", Console(quiet=True))
        again = run_suite(
            make_plan(specs, "t", models_dir=tmp_path / "models", hasher=cache.hash_file),
            specs,
            cache,
            progress=False,
        )
    import pandas as pd

    answers = pd.read_parquet(out / "answers.parquet")
    described = answers[answers.pipeline.str.startswith("described/")]
    assert len(described) == len(diagnoses)
    assert set(described.model) == {"tiny-llava"}
    assert (again.ran, again.failed) == (0, 0)  # a second run makes no request
