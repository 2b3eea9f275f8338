"""Latency timing shared by the benchmarks: percentiles in ms, and several searchers timed query
by query in turn so a burst of load from elsewhere falls on every one alike."""

from __future__ import annotations

import time

import numpy as np


def pct(xs, q) -> float:
    """The q-th percentile of durations in seconds, in ms."""
    return float(np.percentile(np.asarray(xs) * 1000, q))


def time_interleaved(fns: dict, queries) -> dict:
    """(p50, p99) ms of each fn, timed query by query in turn (the order rotating), after one
    untimed pass of each."""
    for fn in fns.values():
        for q in queries:
            fn(q)
    names = list(fns)
    ts = {n: [] for n in names}
    for i, q in enumerate(queries):
        for j in range(len(names)):
            n = names[(i + j) % len(names)]
            t = time.perf_counter()
            fns[n](q)
            ts[n].append(time.perf_counter() - t)
    return {n: (pct(v, 50), pct(v, 99)) for n, v in ts.items()}
