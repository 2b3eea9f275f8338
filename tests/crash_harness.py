"""Crash injection for writer tests: run a `vsplade` command in a subprocess, find the named
steps it goes through (vsplade.crashpoints), and SIGKILL it at any of them.

    steps = crash_steps(["index", ...])          # [("encoded.shard.npz-written", 3), ...]
    proc = run_vsplade([...], crash_at="encoded.shard.npz-written:2")
    assert proc.returncode == -signal.SIGKILL
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

KILLED = -9


def _env(extra: dict | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VSPLADE_CRASH")}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.update(extra or {})
    return env


def run_vsplade(args: list[str], crash_at: str | None = None, env: dict | None = None,
                cwd: str | Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    extra = dict(env or {})
    if crash_at:
        extra["VSPLADE_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-m", "vsplade", *map(str, args)], env=_env(extra), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def crash_steps(args: list[str], env: dict | None = None, cwd: str | Path | None = None) -> list[tuple[str, int]]:
    """Run the command once (it must succeed) and return each crash point it reached with
    how many times, in first-reached order. The run's effects stay (callers use a scratch dir)."""
    with tempfile.NamedTemporaryFile("r", suffix=".steps") as log:
        proc = run_vsplade(args, env={**(env or {}), "VSPLADE_CRASH_LOG": log.name}, cwd=cwd)
        assert proc.returncode == 0, proc.stderr
        names = [line.strip() for line in open(log.name) if line.strip()]
    counts = Counter(names)
    return [(n, counts[n]) for n in dict.fromkeys(names)]
