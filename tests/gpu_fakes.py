"""Fake work for the GPU check's child processes (importable by a spawned child by name)."""

from __future__ import annotations

import os
import subprocess
import time

from medbench.checks.deadline import Send
from medbench.checks.gpu_report import Answered, Begun, Loaded
from medbench.checks.gpu_steps import ModelCheck


def hangs_for_llava(check: ModelCheck, send: Send) -> None:
    """tiny-llava loads in 0.5 s, answers at batch 1, then never finishes the automatic batch
    size; any other model finishes at once."""
    if check.model != "tiny-llava":
        finishes(check, send)
        return
    send(Begun("load"))
    send(Loaded(0.5, "bfloat16"))
    send(Begun("batch 1"))
    send(Answered(1, False, 3.0, ("yes", "no")))
    send(Begun("auto batch"))
    time.sleep(600)


def fails_while_scoring(check: ModelCheck, send: Send) -> None:
    """Answers at both batch sizes, then fails in its likelihood batch."""
    send(Loaded(0.5, "float16"))
    send(Answered(1, False, 3.0, ("yes", "no")))
    send(Answered(4, True, 9.0, ("yes", "yes")))
    send(Begun("likelihood"))
    raise RuntimeError("out of options")


def finishes(check: ModelCheck, send: Send) -> None:
    """Every generation step, at once."""
    send(Loaded(0.2, "float32"))
    send(Answered(1, False, 2.0, ("a",)))
    send(Answered(2, True, 4.0, ("a",)))


def starts_a_helper_and_hangs(argument: object, send: Send) -> None:
    """Starts a helper process (as vLLM starts its engine), says its pid, then hangs."""
    helper = subprocess.Popen(["sleep", "600"])
    send(helper.pid)
    time.sleep(600)


def dies(argument: object, send: Send) -> None:
    """Says one thing, then its process dies without a word (as a crash in native code)."""
    send("before")
    os._exit(3)
