"""The GPU check's real-template prompt test: `tests/test_golden_prompts.py`'s test of each real
model's own processor (it skips a model whose files are not in the local Hugging Face cache),
run by pytest in a subprocess, its outcome read per model from pytest's JUnit XML."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path

TEST_FILE = Path("tests") / "test_golden_prompts.py"
TEST_NAME = "test_golden_prompts_real_model_in_local_hf_cache"
NO_CASE = "no case"
"""The outcome of a model the test has no case for (a test model, a local checkpoint)."""
_CASE = re.compile(rf"{TEST_NAME}\[(?P<model>[^\]]+)\]")


def run_template_test(
    test_file: Path, models: Sequence[str], timeout_s: float, python: str = sys.executable
) -> dict[str, str]:
    """Each model's outcome: `pass`, `FAIL: ...`, `skipped: ...` (why), `no case`, or, for
    every model, why the test could not be run."""
    if not test_file.is_file():
        return dict.fromkeys(models, f"not run: {test_file} not found (run from the repository)")
    with tempfile.TemporaryDirectory(prefix="medbench-template-test-") as folder:
        report = Path(folder) / "junit.xml"
        command = [python, "-m", "pytest", str(test_file), "-k", TEST_NAME, "-q"]
        command += ["-p", "no:cacheprovider", f"--junitxml={report}"]
        try:
            subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return dict.fromkeys(models, f"not run: pytest took over {timeout_s:g} s")
        if not report.is_file():
            return dict.fromkeys(models, "not run: pytest wrote no report")
        outcomes = parse_junit(report.read_text(encoding="utf-8"))
    return {model: outcomes.get(model, NO_CASE) for model in models}


def parse_junit(text: str) -> dict[str, str]:
    """Model id -> outcome of its case of the test, from pytest's JUnit XML."""
    outcomes: dict[str, str] = {}
    for case in ElementTree.fromstring(text).iter("testcase"):
        found = _CASE.fullmatch(case.get("name", ""))
        if found is None:
            continue
        outcomes[found["model"]] = _outcome(case)
    return outcomes


def _outcome(case: ElementTree.Element) -> str:
    for tag, outcome in (("failure", "FAIL"), ("error", "FAIL"), ("skipped", "skipped")):
        element = case.find(tag)
        if element is not None:
            message = (element.get("message") or "").splitlines()
            return f"{outcome}: {message[0]}" if message else outcome
    return "pass"
