"""Model backends, loaded lazily by name so that heavy libraries import only when used."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from medbench.errors import BackendError
from medbench.run.backends.base import BackendContext as BackendContext
from medbench.run.backends.base import Request as Request
from medbench.run.backends.baseline import REFUSAL_TEXT as REFUSAL_TEXT
from medbench.run.backends.device import cpu_refusal as cpu_refusal

if TYPE_CHECKING:
    from medbench.run.backends.base import Backend, BackendContext
    from medbench.spec import ModelSpec

BACKENDS: dict[str, str] = {
    "hf": "medbench.run.backends.hf:HFBackend",
    "baseline": "medbench.run.backends.baseline:BaselineBackend",
    "openai": "medbench.run.backends.openai_api:OpenAIBackend",
    "vllm": "medbench.run.backends.vllm_engine:VLLMBackend",
}


def load_backend(spec: ModelSpec, context: BackendContext) -> Backend:
    """Import the backend class named for `spec.backend` and build it."""
    target = BACKENDS.get(spec.backend)
    if target is None:
        raise BackendError(f"model {spec.id}: unknown backend {spec.backend!r}")
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise BackendError(
            f"model {spec.id}: backend {spec.backend!r} needs a package that is not installed "
            f"({e.name}). Install medbench with its dependencies: pip install -e ."
        ) from e
    backend: Backend = getattr(module, class_name)(spec, context)
    return backend
