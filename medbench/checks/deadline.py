"""A piece of work run in a child process under a deadline: what it reported before it ended,
finished or not.

The GPU check runs each model this way so that its time limit holds *inside* the model's run:
a model still loading or generating at its deadline is killed (its whole process group, so
that helper processes such as vLLM's engine go too, and the GPU memory is freed), and the
steps it finished are kept. The child is started with `spawn`: CUDA cannot be used in a
forked child.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

Send = Callable[[Any], None]
"""How the work reports: each call sends one picklable event to the parent at once."""
Work = Callable[[Any, Send], None]
"""Module-level function (the child imports it by name) taking its argument and `send`."""

EXIT_GRACE_S = 10.0
"""How long a child that said it finished may take to exit before it is killed."""


@dataclass
class Ended:
    """How a child's work ended, and every event it sent before."""

    events: list[Any] = field(default_factory=list)
    seconds: float = 0.0
    timed_out: bool = False
    error: str | None = None
    """Why the work failed: its exception (`Type: message`), or how the child died."""


@dataclass(frozen=True)
class _Failed:
    error: str


@dataclass(frozen=True)
class _Finished:
    pass


def _child(work: Work, argument: Any, conn: Connection) -> None:
    # A group of its own: killing the group at the deadline reaches the processes it starts.
    with contextlib.suppress(OSError):
        os.setsid()
    try:
        work(argument, conn.send)
    except BaseException as e:  # reported to the parent, whatever it was
        conn.send(_Failed(f"{type(e).__name__}: {e}"))
    else:
        conn.send(_Finished())
    finally:
        conn.close()


def run_with_deadline(
    work: Work, argument: Any, limit_s: float, on_event: Send | None = None
) -> Ended:
    """Run `work(argument, send)` in a child process; kill it `limit_s` seconds after it starts.

    Every event it sent is in the result (and passed to `on_event` as it arrives)."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(work, argument, send), daemon=True)
    started = time.monotonic()
    process.start()
    send.close()  # the child holds its own end: EOF here means the child is gone
    ended = Ended()
    died = False
    try:
        died = _collect(receive, ended, started + limit_s, on_event)
    finally:
        receive.close()
        process.join(0 if ended.timed_out else EXIT_GRACE_S)
        _kill(process)
        process.join()
    ended.seconds = time.monotonic() - started
    if died:
        ended.error = f"the child process died (exit status {process.exitcode})"
    return ended


def _collect(receive: Connection, ended: Ended, deadline: float, on_event: Send | None) -> bool:
    """Read events until the work ends or the deadline passes; True if the child died first."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            ended.timed_out = True
            return False
        if not receive.poll(min(left, 1.0)):
            continue
        try:
            event = receive.recv()
        except EOFError:  # gone without a word (killed, a crash in native code)
            return True
        if isinstance(event, _Finished):
            return False
        if isinstance(event, _Failed):
            ended.error = event.error
            return False
        ended.events.append(event)
        if on_event is not None:
            on_event(event)


def _kill(process: Any) -> None:
    """Kill what is left of the child's process group, and the child if it made none."""
    if process.pid is None:
        return
    with contextlib.suppress(OSError):  # no group left (or none made yet)
        os.killpg(process.pid, signal.SIGKILL)
    if process.is_alive():
        process.kill()
