import json
from pathlib import Path

import pytest

from medbench.run.batching import MAX_AUTO_BATCH, BatchMemory, BatchSizer


def test_batch_sizer_auto_doubles_on_full_batches_only_and_stops_at_the_cap() -> None:
    sizer = BatchSizer.automatic()
    seen = []
    while not sizer.settled:
        seen.append(sizer.size)
        sizer.fitted(sizer.size - 1 if sizer.size == 4 and seen.count(4) == 1 else sizer.size)
    assert seen == [1, 2, 4, 4, 8, 16, 32]
    assert sizer.size == MAX_AUTO_BATCH


def test_batch_sizer_auto_settles_at_half_the_batch_that_ran_out_of_memory() -> None:
    sizer = BatchSizer.automatic()
    for size in (1, 2, 4):
        sizer.fitted(size)
    sizer.out_of_memory(8)
    sizer.fitted(4)
    assert (sizer.size, sizer.settled, sizer.largest_fit, sizer.out_of_memory_at) == (4, True, 4, 8)
    sizer.out_of_memory(4)  # a longer batch later: the remembered size shrinks too
    assert sizer.size == 2


def test_batch_sizer_fixed_never_changes() -> None:
    sizer = BatchSizer.fixed(8)
    sizer.out_of_memory(8)
    sizer.fitted(4)
    assert (sizer.size, sizer.auto) == (8, False)


def test_batch_memory_round_trips_sorted_with_its_schema_version(tmp_path: Path) -> None:
    memory = BatchMemory(tmp_path)
    memory.put("m2@x", "cuda:0 H200 139000 MiB bfloat16", 16)
    memory.put("m1@y", "cpu float32", 4)
    memory.put("m2@x", "cuda:0 H200 139000 MiB bfloat16", 12)
    assert json.loads((tmp_path / "batch_sizes.json").read_text()) == {
        "schema_version": 1,
        "sizes": [
            {"model": "m1@y", "device": "cpu float32", "batch_size": 4},
            {"model": "m2@x", "device": "cuda:0 H200 139000 MiB bfloat16", "batch_size": 12},
        ],
    }
    assert memory.get("m2@x", "cuda:0 H200 139000 MiB bfloat16") == 12
    assert memory.get("m2@x", "cpu float32") is None


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"schema_version": 2, "sizes": [{"model": "m", "device": "d", "batch_size": 4}]}',
        '{"schema_version": 1, "sizes": [{"model": "m", "device": "d", "batch_size": "4"}]}',
        '{"schema_version": 1, "sizes": [{"model": "m", "device": "d", "batch_size": 0}]}',
        '{"schema_version": 1, "sizes": [{"model": "m", "device": "d", "batch_size": true}]}',
    ],
)
def test_batch_memory_ignores_a_malformed_or_other_version_file(tmp_path: Path, text: str) -> None:
    (tmp_path / "batch_sizes.json").write_text(text)
    assert BatchMemory(tmp_path).get("m", "d") is None
