"""Work in a child process under a deadline: killed with the processes it started, what it
sent kept, a death without a word reported."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medbench.checks.deadline import run_with_deadline
from tests import gpu_fakes

pytestmark = pytest.mark.slow  # each test starts a child process

REPO = Path(__file__).resolve().parents[2]


def gone(pid: int, wait_s: float = 10.0) -> bool:
    """Whether process `pid` has ended (exited, or a zombie left to be reaped)."""
    until = time.monotonic() + wait_s
    while time.monotonic() < until:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


def test_deadline_kills_the_work_and_the_processes_it_started() -> None:
    started = time.monotonic()
    ended = run_with_deadline(gpu_fakes.starts_a_helper_and_hangs, None, 8.0)
    assert time.monotonic() - started < 30  # the work sleeps 600 s
    assert ended.timed_out and ended.error is None
    assert 8.0 <= ended.seconds < 30
    (helper,) = ended.events
    assert gone(helper)


def test_deadline_a_child_that_dies_is_reported_with_what_it_sent() -> None:
    ended = run_with_deadline(gpu_fakes.dies, None, 60.0)
    assert (ended.events, ended.timed_out) == (["before"], False)
    assert ended.error == "the child process died (exit status 3)"


def test_deadline_sigterm_to_the_check_kills_the_model_and_its_helpers() -> None:
    script = (
        "import signal, sys\n"
        "from medbench.checks.deadline import run_with_deadline\n"
        "from medbench.checks.gpu import _stop\n"
        "from tests import gpu_fakes\n"
        "signal.signal(signal.SIGTERM, _stop)\n"
        "run_with_deadline(gpu_fakes.starts_a_helper_and_hangs, None, 300.0,\n"
        "                  on_event=lambda pid: print(pid, flush=True))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", script]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO) as check:
        assert check.stdout is not None
        helper = int(check.stdout.readline())
        check.send_signal(signal.SIGTERM)  # as `timeout 600` does
        assert check.wait(timeout=30) == 128 + signal.SIGTERM
    assert gone(helper)
