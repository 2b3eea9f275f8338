"""Shared by tests that start a program of their own (a test node launcher, a server):
stopping it so that no test leaves a process behind and no stop waits without a deadline."""

from __future__ import annotations

import subprocess


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
