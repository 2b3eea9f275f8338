"""Timing a benchmark by wrapping the real code's functions (no copy of the code timed): the
one timer the encode and the sync benchmarks share, so that nesting counts the same in both."""

from __future__ import annotations

from typing import Callable


class NestedTimer:
    """Per-key totals of `clock` (times `scale`: 1000 for ms) over wrapped calls and timed steps.
    A wrapped call made inside another counts once, in the outermost key: its time is already
    in that one, and counting it twice would make the keys add up to more than the wall."""

    def __init__(self, clock: Callable[[], float], scale: float, totals: dict[str, float]):
        self.clock, self.scale, self.totals = clock, scale, totals
        self.depth = 0

    def timed(self, key: str, fn: Callable) -> Callable:
        def timed(*a, **k):
            if self.depth:
                return fn(*a, **k)
            self.depth += 1
            t0 = self.clock()
            try:
                return fn(*a, **k)
            finally:
                self.totals[key] += self.scale * (self.clock() - t0)
                self.depth -= 1

        return timed

    def add(self, key: str, t0: float) -> float:
        """Charge the time since t0 to `key`; returns now, the start of the next step."""
        t = self.clock()
        self.totals[key] += self.scale * (t - t0)
        return t
