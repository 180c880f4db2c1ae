"""The GPU check's vLLM section (when vLLM is installed): the same requests answered by the
`vllm` backend (in the spec's own dtype), its speed, and how many answers differ from the hf
backend's."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from medbench.run import resolve_identity
from medbench.run.backends import BackendContext, Request, load_backend
from medbench.spec.loading import SpecSet


def vllm_available() -> bool:
    """Whether the `vllm` package can be imported here."""
    return importlib.util.find_spec("vllm") is not None


def check_vllm(
    specs: SpecSet,
    model_id: str,
    requests: list[Request],
    hf_answers: list[str | None],
    state: Path,
) -> str:
    """One line: the vLLM backend's load time, requests/s and answers that differ from hf's."""
    spec = specs.models[model_id].model_copy(update={"backend": "vllm"})
    identity = resolve_identity(spec, specs.root, state / "models", specs=specs)
    started = time.perf_counter()
    backend = load_backend(spec, identity.context(BackendContext(device="cuda")))
    load_s = time.perf_counter() - started
    try:
        started = time.perf_counter()
        outputs = backend.generate(requests)
        seconds = max(time.perf_counter() - started, 1e-9)
    finally:
        backend.close()
    texts = [o.text for o in outputs]
    differ = sum(a != b for a, b in zip(texts, hf_answers, strict=True))
    return (
        f"{model_id} (vllm): load {load_s:.1f} s; {len(requests) / seconds:.2f} requests/s; "
        f"{differ} of {len(requests)} answers differ from the hf backend's"
    )
