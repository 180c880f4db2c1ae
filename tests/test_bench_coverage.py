"""The coverage benchmark's quick mode runs (CI keeps it from rotting)."""

from __future__ import annotations

import re

import pytest

from benchmarks import bench_coverage


def test_bench_coverage_quick_prints_each_setting_with_its_monte_carlo_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench_coverage.main(["--quick"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "coverage and false-positive rates: 60 repetitions, 200 resamples"
    rows = [line for line in lines if re.search(r" \d\.\d{3} +\d\.\d{3}  ", line)]
    assert len(rows) == len(bench_coverage.settings(200))
    for row in rows:
        rate, error = (float(x) for x in re.findall(r" (\d\.\d{3})", row)[:2])
        assert 0.0 <= rate <= 1.0 and error == pytest.approx(
            (rate * (1 - rate) / 60) ** 0.5, abs=1e-3
        )
