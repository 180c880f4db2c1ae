"""The shared-prefix benchmark's quick mode runs (CI keeps it from rotting)."""

from __future__ import annotations

import re

import pytest

from benchmarks import bench_prefix


@pytest.mark.slow
def test_bench_prefix_quick_shares_prefixes_with_the_same_answers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench_prefix.main(["--quick"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        "shared image prefix: closed_diagnosis (7 image-first wordings) x 2 images"
    )
    rows = {line.split()[0]: line for line in lines[2:]}
    assert set(rows) == {*bench_prefix.ARCHS, "all"}
    for arch in bench_prefix.ARCHS:
        assert rows[arch].endswith("the same tokens")
        full, shared = (int(n.replace(",", "")) for n in rows[arch].split()[1:3])
        assert shared < full
    assert float(re.split(r"\s+", rows["all"])[3]) <= bench_prefix.MOST_RATIO
