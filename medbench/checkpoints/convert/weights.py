"""Weight files read one at a time: keys and shapes without the data, tensors on demand."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medbench.checkpoints.convert.errors import ConversionError

if TYPE_CHECKING:
    import torch

HASH_CHUNK = 1 << 20


class WeightFile:
    """An open `.safetensors` or `.bin` file: names and shapes are free, tensors read one by one."""

    def __init__(self, path: Path, handle: Any, tensors: dict[str, Any] | None) -> None:
        self.path = path
        self._handle = handle  # a safetensors handle, or None for a memory-mapped `.bin` file
        self._tensors = tensors

    def names(self) -> list[str]:
        names = self._tensors.keys() if self._tensors is not None else self._handle.keys()
        return sorted(names)

    def shape(self, key: str) -> tuple[int, ...]:
        if self._tensors is not None:
            return tuple(self._tensors[key].shape)
        return tuple(self._handle.get_slice(key).get_shape())

    def tensor(self, key: str) -> torch.Tensor:
        """The tensor `key`, in memory (a `.bin` tensor is copied out of its memory map)."""
        tensor: torch.Tensor
        if self._tensors is not None:
            tensor = self._tensors[key].clone()
        else:
            tensor = self._handle.get_tensor(key)
        return tensor


@contextmanager
def open_weights(path: Path) -> Iterator[WeightFile]:
    """Open a weight file lazily: safetensors by header, `.bin` memory-mapped, no pickled code."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            handle = safe_open(str(path), framework="pt")
        except Exception as e:  # safetensors raises its own SafetensorError, among others
            raise ConversionError(f"{path}: cannot read safetensors file: {e}") from e
        try:
            yield WeightFile(path, handle, None)
        finally:
            del handle
        return
    if path.suffix == ".bin":
        import torch

        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:  # weights_only refuses pickled code with an UnpicklingError
            raise ConversionError(f"{path}: cannot read PyTorch weights: {e}") from e
        if not isinstance(state, dict):
            raise ConversionError(f"{path}: expected a state dict, got {type(state).__name__}")
        try:
            yield WeightFile(path, None, state)
        finally:
            del state
        return
    raise ConversionError(f"{path}: unknown weight file type; expected .safetensors or .bin")


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def save_shard(tensors: dict[str, torch.Tensor], path: Path) -> int:
    """Write one safetensors shard; returns the bytes of tensor data it holds."""
    from safetensors.torch import save_file

    contiguous = {key: value.contiguous() for key, value in tensors.items()}
    save_file(contiguous, str(path), metadata={"format": "pt"})
    return sum(t.numel() * t.element_size() for t in contiguous.values())
