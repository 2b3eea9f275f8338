"""Latency timing shared by the benchmarks: percentiles in ms, and several searchers timed query
by query in turn so a burst of load from elsewhere falls on every one alike."""

from __future__ import annotations

import time

import numpy as np


def pct(xs, q) -> float:
    """The q-th percentile of durations in seconds, in ms."""
    return float(np.percentile(np.asarray(xs) * 1000, q))


def time_interleaved(fns: dict, queries) -> dict:
    """(p50, p99) ms of each fn, timed in turn (the order rotating) so a burst of load falls on
    every fn alike, after one untimed pass of each. Within a turn each fn gets a DIFFERENT query
    (fn j at step i runs query (i + j x stride) mod n; over the n steps every fn runs every query
    once): two fns that read the same data (one searcher, two settings) would otherwise run the
    same query back to back, the second finding its postings in the CPU caches (a capped search
    measured 1.10 ms that way against 1.26 ms on its own at 1M pages)."""
    for fn in fns.values():
        for q in queries:
            fn(q)
    names = list(fns)
    n = len(queries)
    stride = max(1, n // max(1, len(names)))
    ts = {name: [] for name in names}
    for i in range(n):
        for j in range(len(names)):
            k = (i + j) % len(names)
            name = names[k]
            q = queries[(i + k * stride) % n]
            t = time.perf_counter()
            fns[name](q)
            ts[name].append(time.perf_counter() - t)
    return {name: (pct(v, 50), pct(v, 99)) for name, v in ts.items()}
