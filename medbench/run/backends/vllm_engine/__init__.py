"""The vLLM backend (`backend: vllm`, the optional `vllm` extra): in-process vLLM with prefix
caching, for long suites on a GPU."""

from __future__ import annotations

from medbench.run.backends.vllm_engine.backend import VLLMBackend, sampling_options

__all__ = ["VLLMBackend", "sampling_options"]
