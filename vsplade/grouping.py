"""Search results grouped by document: the best files, each with its best pages.

A person searching manuals wants the manuals that answer, not ten pages of one of them. A file's
score is its best page's score; within a file its pages rank as they do ungrouped; ties between
files go to the one whose best page ranks first ungrouped (lower row / doc id). Every engine
groups inside the engine (memory: `top_groups` over the exact scores; Lucene: a collector that
keeps each file's best pages; OpenSearch: `collapse` on the source with `inner_hits`), so a file
is never missed because its pages fell outside a page top-k.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .engines.base import Hit

GROUP_BY = ("file",)
DEFAULT_PAGES_PER_FILE = 3


@dataclass
class FileHit:
    """One document in grouped results: its key, its score (its best page's) and its best pages."""

    source: str | None
    score: float
    hits: list[Hit] = field(default_factory=list)

    @property
    def path(self) -> str | None:
        return self.hits[0].path if self.hits else None

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "score": self.score, "hits": [h.as_dict() for h in self.hits]}


def check_group_by(group_by: str | None, pages_per_file: int) -> None:
    if group_by is not None and group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)} (or None), got {group_by!r}")
    if pages_per_file < 1:
        raise ValueError(f"pages_per_file must be positive, got {pages_per_file}")


def top_groups(scores: np.ndarray, groups: np.ndarray, k: int, per_group: int) -> list[list[int]]:
    """Rows of the k best groups (each: its rows, best first, at most per_group), exactly.
    scores: per row (0 or less: not a hit); groups: an integer group code per row."""
    rows = np.flatnonzero(scores > 0)
    if not len(rows):
        return []
    order = rows[np.lexsort((rows, -scores[rows]))]  # score desc, then row asc: the ungrouped ranking
    g = groups[order]
    # rank of each row within its group: position minus the group's first position in `order`
    by_group = np.argsort(g, kind="stable")
    sorted_g = g[by_group]
    starts = np.flatnonzero(np.r_[True, sorted_g[1:] != sorted_g[:-1]])
    rank_sorted = np.arange(len(g)) - np.repeat(starts, np.diff(np.r_[starts, len(g)]))
    rank = np.empty_like(rank_sorted)
    rank[by_group] = rank_sorted
    best = np.flatnonzero(rank == 0)[:k]  # positions in `order` of the k best groups' best rows
    chosen = {int(g[p]): i for i, p in enumerate(best)}
    out: list[list[int]] = [[] for _ in best]
    for p in np.flatnonzero(rank < per_group):
        i = chosen.get(int(g[p]))
        if i is not None:
            out[i].append(int(order[p]))
    return out
