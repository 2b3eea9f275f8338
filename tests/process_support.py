"""Shared by tests that start a program of their own (a test node launcher, a server):
stopping it so that no test leaves a process behind and no stop waits without a deadline."""

from __future__ import annotations

import subprocess
import time
from typing import Callable


def stop_process(proc: subprocess.Popen, grace_s: float, kill_wait_s: float = 30) -> None:
    """SIGTERM (the program's own clean shutdown), then SIGKILL if it has not exited within
    `grace_s`; reaped either way. A process that already exited is left as it is."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(kill_wait_s)


def wait_serving(proc: subprocess.Popen, healthy: Callable[[], bool], output: Callable[[], str], timeout_s: float,
                 what: str = "vsplade serve") -> None:
    """Until `healthy()` (e.g. GET /health is 200), bounded by `timeout_s`; the program's exit or
    the deadline is an AssertionError carrying its output. Connection errors mean "not yet"."""
    deadline = time.monotonic() + timeout_s
    while True:  # bounded by the deadline
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited {proc.returncode}: {output()}")
        try:
            if healthy():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not answer /health in {timeout_s} s: {output()}")
        time.sleep(0.25)
