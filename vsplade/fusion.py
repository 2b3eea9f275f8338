"""Fusing a vector run with a text (BM25) run: pyserini.fusion's formulas, written once.

Two modes, as `--hybrid` names them:

- ``rrf``: reciprocal rank fusion (Cormack et al. 2009, pyserini.fusion.reciprocal_rank_fusion
  with rrf_k=60): a page scores the sum over the runs that found it of 1 / (60 + its 1-based
  rank in that run).
- ``minmax:W``: each run min-max normalised over its own hits ((s - min) / (max - min); a run
  whose hits all score the same gives them 1.0), then W x vector + (1 - W) x text, a page
  missing from a run taking 0 there: pyserini.fusion.interpolation([vector, text], alpha=W)
  of the two runs after RescoreMethod.NORMALIZE. W is the weight on the vector side.

Both runs are cut to `depth` hits before fusing (the engines are asked for `depth` hits each,
so the normalisation sees exactly those), the fused list is sorted by score descending then
page id ascending (pyserini's TrecRun.merge tie-break) and cut to k. No torch, no pandas:
this runs on the query side.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

from .engines.base import Hit

RRF_K = 60  # pyserini.fusion.reciprocal_rank_fusion's default (Cormack et al.)
DEFAULT_DEPTH = 100  # hits taken from each run when none is given (at least k)
MODES = ("rrf", "minmax")


@dataclass(frozen=True)
class Fusion:
    """How to fuse: method "rrf" (rrf_k) or "minmax" (weight on the vector side, 0..1)."""

    method: str = "rrf"
    weight: float = 0.5
    rrf_k: int = RRF_K

    @classmethod
    def of(cls, spec: Any) -> "Fusion":
        """A Fusion from "rrf", "rrf:K" (rrf_k), "minmax:W" or a Fusion; ValueError naming the
        accepted forms otherwise."""
        if isinstance(spec, Fusion):
            return spec
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(f"hybrid must be 'rrf' or 'minmax:W' (W: weight on the vector side, 0..1), got {spec!r}")
        method, _, arg = spec.strip().lower().partition(":")
        try:
            if method == "rrf":
                rrf_k = int(arg) if arg else RRF_K
                if rrf_k < 0:
                    raise ValueError
                return cls("rrf", rrf_k=rrf_k)
            if method == "minmax":
                weight = float(arg) if arg else 0.5
                if not 0.0 <= weight <= 1.0:
                    raise ValueError
                return cls("minmax", weight=weight)
        except ValueError:
            pass
        raise ValueError(f"hybrid must be 'rrf' or 'minmax:W' (W: weight on the vector side, 0..1), got {spec!r}")

    def __str__(self) -> str:
        if self.method == "rrf":
            return "rrf" if self.rrf_k == RRF_K else f"rrf:{self.rrf_k}"
        return f"minmax:{self.weight:g}"


def depth_for(k: int, depth: int | None = None) -> int:
    """Hits taken from each run: `depth` if given (never under k), else max(k, DEFAULT_DEPTH)."""
    if depth is not None and depth < 1:
        raise ValueError(f"depth must be positive, got {depth}")
    return max(k, depth if depth is not None else DEFAULT_DEPTH)


def _normalised(scores: Sequence[float]) -> list[float]:
    # pyserini's RescoreMethod.NORMALIZE: equal scores all become 1.0
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high - low == 0:
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def fuse(vector: Sequence[Hit], text: Sequence[Hit], mode: Any = "rrf", k: int | None = None,
         depth: int | None = None) -> list[Hit]:
    """The fused run, best first, at most k hits (all if None). Each run is taken in its
    order, cut to depth first if given. A returned hit is a copy of the vector side's hit
    when that side found the page (its explain kept), else of the text side's, with score
    the fused score and `hybrid` the two sides' scores and ranks (None where absent)."""
    fusion = Fusion.of(mode)
    runs = [list(vector)[:depth] if depth else list(vector), list(text)[:depth] if depth else list(text)]
    if fusion.method == "rrf":
        contributions = [[1.0 / (fusion.rrf_k + rank) for rank in range(1, len(run) + 1)] for run in runs]
    else:
        scales = (fusion.weight, 1.0 - fusion.weight)
        contributions = [[s * scale for s in _normalised([h.score for h in run])] for run, scale in zip(runs, scales)]
    fused: dict[str, float] = {}
    first: dict[str, Hit] = {}
    sides: dict[str, dict[str, Any]] = {}
    for side, run, parts in zip(("vector", "text"), runs, contributions):
        for rank, (hit, part) in enumerate(zip(run, parts), start=1):
            if hit.id in sides and sides[hit.id][side] is not None:
                continue  # a page twice in one run (should not happen): its best rank counts
            # summed in run order (vector, then text), as pandas' groupby sum adds them
            fused[hit.id] = fused[hit.id] + part if hit.id in fused else part
            first.setdefault(hit.id, hit)
            entry = sides.setdefault(hit.id, {"vector": None, "vector_rank": None, "text": None, "text_rank": None})
            entry[side], entry[f"{side}_rank"] = hit.score, rank
    order = sorted(fused, key=lambda i: (-fused[i], i))
    if k is not None:
        order = order[:k]
    out = []
    for i in order:
        base = first[i]
        hit = replace(base, score=fused[i], hybrid=sides[i])
        if base.query is not None:
            hit.attach_query(base.query, base._query_encoder)
        out.append(hit)
    return out


def group_fused(hits: Sequence[Hit], k: int, per_group: int) -> list:
    """Fused pages grouped by file (vsplade.grouping.FileHit): the k files whose best page
    ranks first, each with its per_group best pages in fused order. Hybrid grouping is done
    over the fused pages (depth from each run), in the client: a file none of whose pages
    reached either run's depth is not among them."""
    from .grouping import FileHit

    groups: dict[Any, FileHit] = {}
    for h in hits:
        g = groups.get(h.source)
        if g is None:
            if len(groups) >= k:
                continue
            g = groups[h.source] = FileHit(h.source, h.score, [])
        if len(g.hits) < per_group:
            g.hits.append(h)
    return list(groups.values())
