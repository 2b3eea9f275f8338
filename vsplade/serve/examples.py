"""Example queries for the web page's start view, from the words a collection's pages hold.

A person who opens the page before searching sees what the collection is about and can try a
query with one click. The examples are word pairs that occur side by side on several pages
(``package management``, ``interface definition``), single frequent words when pairs are too
few, spread over the files (one file's running header must not fill every chip). Input is the
pages' text (every engine: the text layer read from the indexed files) or, for pages without
text, their largest terms (engines whose searcher holds the vectors). Pure: no I/O here.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Iterable, Sequence

# words that make no query on their own (English function words and page furniture)
STOP = frozenset("""
a about above after again all also an and any are as at be because been before being below between both but by
can could did do does doing down during each else etc few for from further had has have having he her here hers
him his how however if in into is it its itself just may me might more most must my no nor not now of off on once
only or other our out over own page pages same see she should so some such than that the their them then there
these they this those through to too under until up use used using very was we were what when where which while
who whom why will with would you your figure table chapter section contents index copyright version www http https
com org html pdf
""".split())
WORD = re.compile(r"[^\W\d_](?:[^\W_]|['’-](?=[^\W_]))*")  # letters (digits inside), inner ' or -
MIN_LEN = 3
MAX_SHARE = 0.6  # a word on more than this share of the pages (a running header) says nothing


def words(text: str) -> list[str]:
    return [w for w in WORD.findall(text.lower()) if len(w) >= MIN_LEN]


def example_queries(pages: Iterable[tuple[str, str]], n: int = 5) -> list[str]:
    """Up to `n` queries from (file key, page text) pairs: first the most repeated word pair
    of each file (files in order of how many of their pages were read; ties go to the pair of
    more frequent words), then the pairs repeated most across the collection, then single
    words on several pages; no two examples share a word."""
    pages = list(pages)
    if not pages:
        return []
    page_df: Counter = Counter()
    pair_df: Counter = Counter()
    pair_count: Counter = Counter()
    in_file: dict[str, Counter] = defaultdict(Counter)
    for source, text in pages:
        seen: set[str] = set()
        pairs: set[tuple[str, str]] = set()
        for line in text.splitlines():
            ws = words(line)
            seen.update(ws)
            for p in zip(ws, ws[1:]):
                pairs.add(p)
                pair_count[p] += 1
                in_file[source][p] += 1
        page_df.update(seen)
        pair_df.update(pairs)
    limit = max(2, MAX_SHARE * len(pages))

    def ok(p: Sequence[str]) -> bool:
        return len(set(p)) == len(p) and all(w not in STOP and page_df[w] <= limit for w in p)

    chosen: list[str] = []
    used: set[str] = set()

    def take(ws: Sequence[str]) -> bool:
        if len(chosen) < n and not used & set(ws):
            chosen.append(" ".join(ws))
            used.update(ws)
            return True
        return False

    for f, _ in Counter(s for s, _ in pages).most_common():  # one per file: the collection's range
        counts = in_file[f]
        for p in sorted((p for p in counts if ok(p)), key=lambda p: (-counts[p], -page_df[p[0]] - page_df[p[1]], p)):
            if take(p):
                break
    for p in sorted((p for p in pair_count if pair_count[p] >= 2 and ok(p)), key=lambda p: (-pair_df[p], -pair_count[p], p)):
        take(p)
    for w in sorted((w for w in page_df if ok([w]) and len(w) >= 4 and page_df[w] >= 2), key=lambda w: (-page_df[w], w)):
        take([w])
    return chosen


def example_terms(term_lists: Iterable[Sequence[str]], n: int = 5) -> list[str]:
    """Up to `n` single-word queries from pages' largest terms (already shown as words): the
    terms on most pages, function words left out."""
    df: Counter = Counter()
    for terms in term_lists:
        df.update({t.strip().lower() for t in terms if WORD.fullmatch(t.strip().lower() or "-")})
    ranked = sorted((t for t in df if t not in STOP and len(t) >= 4), key=lambda t: (-df[t], t))
    return ranked[:n]
