"""Crash points: named steps of a writer where a test can stop the process dead.

Writers call ``crash_point("encoded.shard.after-npz")`` (a name per distinct step). With the
environment variable ``VSPLADE_CRASH_AT=NAME`` (or ``NAME:N``) the process SIGKILLs itself
the first (N-th) time it reaches that step: no cleanup, no atexit, no flush, exactly like
``kill -9`` at that moment. The crash-injection tests run a writer in a subprocess once per
step and check that a re-run converges to every acknowledged page. Without the variable a
crash point costs one dict lookup.

``VSPLADE_CRASH_LOG=FILE`` appends every step name reached to FILE, so a test can discover
the steps a run goes through instead of hard-coding them.
"""

from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    spec = os.environ.get("VSPLADE_CRASH_AT")
    if not spec:
        return None
    name, _, n = spec.partition(":")
    return name, int(n or 1)


def crash_point(name: str) -> None:
    log = os.environ.get("VSPLADE_CRASH_LOG")
    if log:
        with open(log, "a") as f:
            f.write(name + "\n")
    target = _target()
    if target is None or target[0] != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
