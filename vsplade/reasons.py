"""Why a page matched, in the query's own words.

Engines explain a hit term by term, and terms are word pieces (`Fort`, `ran` for "Fortran"),
which read as noise. Here the pieces of one query word are put back together: each word gets
its share of the score and whether the page matched it whole (every piece of the word) or only
in part. A result list in which no page matches any query word whole is flagged: those pages
share word pieces with the query, not words, and should not look like confident answers.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence


def word_reasons(words: Sequence[tuple[str, list[str]]], explain: Mapping[str, float],
                 score: float, display=None) -> list[dict[str, Any]]:
    """Per query word (in the query's order): its contribution (a piece shared by several words
    is split between them), its share of the score, which pieces matched, and `whole`."""
    owners: dict[str, int] = {}
    for _, terms in words:
        for t in terms:
            owners[t] = owners.get(t, 0) + 1
    out = []
    for word, terms in words:
        if not terms:
            continue
        matched = [t for t in terms if explain.get(t, 0) > 0]
        contribution = sum(explain[t] / owners[t] for t in matched)
        out.append({
            "word": word,
            "contribution": float(contribution),
            "share": float(contribution / score) if score > 0 else 0.0,
            "pieces": [display(t) if display else t for t in terms],
            "matched_pieces": [display(t) if display else t for t in matched],
            "whole": len(matched) == len(terms),
        })
    return out


def weak_match_notice(words: Sequence[tuple[str, list[str]]], reasons_per_hit: Sequence[Sequence[Mapping]]) -> str | None:
    """A line for results none of whose pages matches any query word whole (None otherwise)."""
    if not reasons_per_hit or any(r["whole"] for reasons in reasons_per_hit for r in reasons):
        return None
    asked = " ".join(w for w, terms in words if terms) or "the query"
    return (f"no page contains any of \"{asked}\" as a whole word; these pages share word pieces "
            "with it only (weak matches)")
