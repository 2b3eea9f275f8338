"""Two-phase search (issue 24 item 3): fast approximate top-k whose scores stay exact.

OpenSearch's neural-sparse two-phase idea, for engines that score {term: weight} queries:

1. phase 1 searches with the query pruned to its high-weight terms (a term is kept when its
   weight >= prune_ratio x the query's largest weight; the largest is always kept) and keeps a
   window of ceil(k x expansion) candidates;
2. phase 2 scores those candidates with EVERY term of the query, exactly, and returns the top k.

What it gives up: a page that would enter the exact top-k only through the pruned (low-weight)
terms, and that the kept terms do not rank inside the window, is missed. A returned page's
score is its exact score, never a phase-1 partial one. prune_ratio 0 keeps every term (the
exact search); a larger expansion widens the window (recall up, phase 2 costlier). Query
weights of an inference-free query side are idf-like (vsplade.query), so the pruned terms are
the frequent word pieces: the long postings lists that make exact search slow.

Engines taking it: memory (vsplade.engines.memory) and lucene (vsplade_lucene.searcher), as
``search(query, k, two_phase=TwoPhase(...))``; others raise EngineError (engines.base.Searcher).

``two_phase=None`` is the index's own default: exact, except a Lucene index built with
``--prune`` (approximate with exact scores). ``two_phase=False`` (or "off" / "exact") asks for the
exact search even there (wants_exact): a capped index (``--prune cap=C``) keeps every posting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping


EXACT_WORDS = ("off", "exact")


def wants_exact(value: Any) -> bool:
    """two_phase=False, "off" or "exact": the exact search, also on an index that searches
    approximately by default (a Lucene index built with --prune)."""
    return value is False or (isinstance(value, str) and value.strip().lower() in EXACT_WORDS)


@dataclass(frozen=True)
class TwoPhase:
    """prune_ratio in [0, 1]: keep terms weighing >= prune_ratio x the query's max weight in
    phase 1. expansion >= 1: phase 1's window is ceil(k x expansion) candidates."""

    prune_ratio: float = 0.4
    # (0.4, 10): recall@10 0.990 at 100k Quality pages where (0.4, 5) gave 0.964 (RESULTS.md)
    expansion: float = 10.0

    def __post_init__(self) -> None:
        for name, lo, hi in (("prune_ratio", 0.0, 1.0), ("expansion", 1.0, math.inf)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"two-phase {name} must be a finite number, not {v!r}")
            if not lo <= v <= hi:
                raise ValueError(f"two-phase {name} must be in [{lo:g}, {hi:g}], not {v!r}")

    @classmethod
    def of(cls, value: Any) -> "TwoPhase | None":
        """None: the index's default; False / "off" / "exact": the exact search (wants_exact);
        both give None here. True: the defaults. A TwoPhase, a mapping of its fields, or a
        "prune_ratio,expansion" string (a command-line value). Anything else: ValueError."""
        if value is None or wants_exact(value):
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {"prune_ratio", "expansion"})
            if unknown:
                raise ValueError(f"two-phase takes prune_ratio and expansion, not {', '.join(map(str, unknown))}")
            return cls(**{k: float(v) for k, v in value.items()})
        if isinstance(value, str):
            parts = value.replace(":", ",").split(",")
            try:
                nums = [float(p) for p in parts]
            except ValueError:
                nums = []
            if len(nums) not in (1, 2):
                raise ValueError(f"two-phase {value!r}: expected PRUNE_RATIO[,EXPANSION] (e.g. 0.4,10), 'on' or 'off'")
            return cls(*nums)
        raise ValueError(f"two_phase must be a TwoPhase, not {type(value).__name__}")

    def window(self, k: int) -> int:
        """Phase 1's candidate count for a top-k."""
        return max(int(k), int(math.ceil(k * self.expansion - 1e-9)))

    def split(self, query: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
        """(kept, pruned): the terms phase 1 searches with, and the others. Never an empty kept
        part for a non-empty query (the heaviest term stays, the first of equals)."""
        if not query:
            return {}, {}
        top = max(query.values())
        floor = self.prune_ratio * top
        kept = {t: w for t, w in query.items() if w >= floor}
        if not kept:  # a query whose largest weight is <= 0: nothing to prune by
            return dict(query), {}
        return kept, {t: w for t, w in query.items() if t not in kept}

    def is_exact_for(self, query: Mapping[str, float]) -> bool:
        """True when phase 1 would keep every term: the exact search is the two-phase one."""
        return not self.split(query)[1]
