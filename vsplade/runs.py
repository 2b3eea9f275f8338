"""Topics in, runs out, in the formats Pyserini and trec_eval users already have.

Topics: TSV ``qid<TAB>text`` (MS MARCO / Pyserini), JSON lines with ``id``/``qid``/``_id``
and ``text``/``query``/``title``, or one query per line (ids 1, 2, ...); ``-`` reads stdin.
Runs: ``trec`` (``qid Q0 docid rank score tag``, what trec_eval reads), ``tsv``
(``qid<TAB>docid<TAB>rank``, Pyserini's MS MARCO output), ``json`` (one
``{"query_id", "query", "hits": [...]}`` object per query).

Page ids (``docid``): ``internal`` (the index's page id, e.g. ``3f2a...-7``) or ``file-page``:
``FILE:PAGE``, the file's key as the catalog stores it (its path relative to the collection
root, e.g. ``reports/2024.pdf``) and the 1-based page number, so qrels people write by hand
(``q1 0 reports/2024.pdf:7 1``) work without the internal id map. A TREC line is split at
whitespace, so whitespace in a file name is written percent-encoded, as is ``%`` itself
(``my%20notes.pdf:3``); a ``:`` in a name stays as it is (the page number is what follows the
LAST ``:``). `parse_file_page` reads such an id back.

Scores are written the way Pyserini writes them (``{score:.6f}``), with one exception that
keeps the ranking trec_eval reads equal to the engine's: where 6 decimals would make two
different scores of one query equal (trec_eval re-sorts by score, then by doc id, so the
near-tie would be broken by id), those scores get the fewest extra decimals that keep them
apart (`score_texts`).
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import IO, Iterator, Sequence
from urllib.parse import unquote

from .engines.base import Hit

FORMATS = ("trec", "tsv", "json")
DOCIDS = ("internal", "file-page")
DECIMALS = 6  # Pyserini's TrecWriter: f"{score:.6f}"
_MAX_DECIMALS = 20
_ESCAPE = re.compile(r"[%\s]")


class TopicsError(ValueError):
    pass


def read_topics(source: str | Path) -> list[tuple[str, str]]:
    """[(query id, text)] in file order."""
    if str(source) == "-":
        lines = sys.stdin.read().splitlines()
        where = "stdin"
    else:
        path = Path(source)
        if not path.is_file():
            raise TopicsError(f"--topics {source}: no such file")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise TopicsError(f"--topics {source}: not UTF-8 text ({e})") from None
        where = str(source)
    topics: list[tuple[str, str]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise TopicsError(f"{where} line {n}: invalid JSON ({e})") from None
            qid = next((obj[k] for k in ("id", "qid", "query_id", "_id") if k in obj), None)
            text = next((obj[k] for k in ("text", "query", "title", "contents") if k in obj), None)
            if qid is None or not isinstance(text, str):
                raise TopicsError(f"{where} line {n}: a JSON topic needs an id (id/qid/_id) and a text (text/query/title)")
            topics.append((str(qid), text))
        elif "\t" in line:
            qid, text = line.split("\t", 1)
            topics.append((qid.strip(), text))
        else:
            topics.append((str(len(topics) + 1), line))
    ids = [q for q, _ in topics]
    if len(set(ids)) != len(ids):
        dup = next(q for q in ids if ids.count(q) > 1)
        raise TopicsError(f"{where}: query id {dup!r} appears more than once")
    return topics


# -- page ids -------------------------------------------------------------------------------

def file_page(source: str, page: int) -> str:
    """``FILE:PAGE`` for a page: whitespace and ``%`` in the file key percent-encoded (a TREC
    run or qrels line is split at whitespace), everything else (``:`` included) as it is."""
    return f"{_ESCAPE.sub(lambda m: ''.join(f'%{b:02X}' for b in m.group().encode()), source)}:{int(page)}"


def parse_file_page(docid: str) -> tuple[str, int]:
    """(file key, page) from a ``FILE:PAGE`` id; ValueError for anything else."""
    source, sep, number = docid.rpartition(":")
    if not sep or not source or not number.isdigit() or int(number) < 1:
        raise ValueError(f"{docid!r} is not a FILE:PAGE id (a file name, ':', a page number from 1)")
    return unquote(source), int(number)


def check_docid(docid: str) -> None:
    if docid not in DOCIDS:
        raise ValueError(f"--docid must be one of {', '.join(DOCIDS)}, got {docid!r}")


def docid_of(hit: Hit, docid: str = "internal") -> str:
    """The id a run names `hit` by."""
    if docid == "internal":
        return hit.id
    if not hit.source or hit.page is None:
        raise ValueError(f"page {hit.id} has no file name and page number in the index (indexed from a "
                         "dataset, not from files?): --docid file-page cannot name it; use --docid internal")
    return file_page(hit.source, hit.page)


# -- scores ---------------------------------------------------------------------------------

def score_texts(scores: Sequence[float]) -> list[str]:
    """Each score as text with Pyserini's 6 decimals, except where 6 decimals would make it
    equal to a different score of the same list: then the fewest decimals (>= 6) that keep it
    apart from its nearest different scores above and below. The written values keep the
    order of the scores (a value written with more decimals still lies strictly between its
    neighbours: fixed-point rounding is monotone and moves a value by at most half a unit of
    the last decimal, and neighbours apart at d decimals are at least one unit apart there)."""
    distinct = sorted({float(s) for s in scores if math.isfinite(s)})
    need = dict.fromkeys(distinct, DECIMALS)
    for lo, hi in zip(distinct, distinct[1:]):
        d = DECIMALS
        while d < _MAX_DECIMALS and f"{lo:.{d}f}" == f"{hi:.{d}f}":
            d += 1
        if f"{lo:.{d}f}" == f"{hi:.{d}f}":  # closer than 1e-20: every digit (repr) for both
            d = -1
        for v in (lo, hi):
            need[v] = -1 if (d == -1 or need[v] == -1) else max(need[v], d)
    out = []
    for s in scores:
        s = float(s)
        d = need.get(s, -1)
        out.append(repr(s) if d == -1 else f"{s:.{d}f}")
    return out


def _rounded(value):
    """Floats in an explanation (contributions, shares) at 6 decimals, for JSON."""
    if isinstance(value, float):
        return round(value, DECIMALS) if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


# -- runs -----------------------------------------------------------------------------------

def write_run(out: IO[str], fmt: str, topics: Sequence[tuple[str, str]], results: Sequence[Sequence[Hit]],
              tag: str = "vsplade", notices: Sequence[str | None] | None = None, docid: str = "internal") -> None:
    """notices: per query, a warning about its results (json only: vsplade.reasons).
    docid: "internal" (the index's page ids) or "file-page" (FILE:PAGE, see the module doc)."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}")
    check_docid(docid)
    # every line first: a page file-page cannot name (ValueError) stops the run before a line is written
    lines = [line for n, ((qid, text), hits) in enumerate(zip(topics, results))
             for line in _lines(fmt, qid, text, hits, tag, notices[n] if notices else None, docid)]
    for line in lines:
        out.write(line + "\n")


def _lines(fmt: str, qid: str, text: str, hits: Sequence[Hit], tag: str, notice: str | None = None,
           docid: str = "internal") -> Iterator[str]:
    if fmt == "json":
        grouped = bool(hits) and not isinstance(hits[0], Hit)  # grouped by file: FileHits
        if grouped:
            key = "files"
            rows = [{"source": f.source, "score": float(s), "hits": _hit_dicts(f.hits, docid)}
                    for f, s in zip(hits, score_texts([f.score for f in hits]))]
        else:
            key, rows = "hits", _hit_dicts(hits, docid)
        row = {"query_id": qid, "query": text, key: rows}
        if notice:
            row["notice"] = notice
        yield json.dumps(row, ensure_ascii=False)
        return
    scores = score_texts([h.score for h in hits]) if fmt == "trec" else None
    for rank, h in enumerate(hits, 1):
        if fmt == "trec":
            yield f"{qid} Q0 {docid_of(h, docid)} {rank} {scores[rank - 1]} {tag}"
        else:
            yield f"{qid}\t{docid_of(h, docid)}\t{rank}"


def _hit_dicts(hits: Sequence[Hit], docid: str) -> list[dict]:
    """Hits as JSON objects, scores as the TREC run writes them (numbers); with file-page ids,
    "id" is FILE:PAGE and "page_id" the index's id (what `vsplade show` and the API also take)."""
    out = []
    for h, s in zip(hits, score_texts([h.score for h in hits])):
        d = _rounded(h.as_dict())
        d["score"] = float(s)
        if docid != "internal":
            d = {"id": docid_of(h, docid), "page_id": h.id, **{k: v for k, v in d.items() if k != "id"}}
        out.append(d)
    return out
