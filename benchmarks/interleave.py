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
    untimed pass of each. The cyclic order stays fixed, so a row always runs right after the
    same other row on the same query: where two rows read the same data (one searcher, two
    windows) the second finds it in the CPU caches and comes out faster than it runs alone.
    time_blocks avoids that."""
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


def time_blocks(fns: dict, queries, rounds: int = 4) -> dict:
    """(p50, p99) ms of each fn, each timed over all the queries in a row (consecutive calls are
    different queries, as in service), rounds times with the order of the fns reversed every
    other round so slow drift in the load falls on all alike; after one untimed pass of each."""
    for fn in fns.values():
        for q in queries:
            fn(q)
    names = list(fns)
    ts = {n: [] for n in names}
    for r in range(rounds):
        for n in (names if r % 2 == 0 else names[::-1]):
            for q in queries:
                t = time.perf_counter()
                fns[n](q)
                ts[n].append(time.perf_counter() - t)
    return {n: (pct(v, 50), pct(v, 99)) for n, v in ts.items()}
