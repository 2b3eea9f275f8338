"""Topics in, runs out, in the formats Pyserini and trec_eval users already have.

Topics: TSV ``qid<TAB>text`` (MS MARCO / Pyserini), JSON lines with ``id``/``qid``/``_id``
and ``text``/``query``/``title``, or one query per line (ids 1, 2, ...); ``-`` reads stdin.
Runs: ``trec`` (``qid Q0 docid rank score tag``, what trec_eval reads; the score with every
digit, as ``vsplade-train eval`` writes it, not Pyserini's 6 decimals), ``tsv``
(``qid<TAB>docid<TAB>rank``, Pyserini's MS MARCO output), ``json`` (one
``{"query_id", "query", "hits": [...]}`` object per query).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Iterator, Sequence

from .engines.base import Hit

FORMATS = ("trec", "tsv", "json")


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


def write_run(out: IO[str], fmt: str, topics: Sequence[tuple[str, str]], results: Sequence[Sequence[Hit]],
              tag: str = "vsplade", notices: Sequence[str | None] | None = None) -> None:
    """notices: per query, a warning about its results (json only: vsplade.reasons)."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}")
    for n, ((qid, text), hits) in enumerate(zip(topics, results)):
        for line in _lines(fmt, qid, text, hits, tag, notices[n] if notices else None):
            out.write(line + "\n")


def _lines(fmt: str, qid: str, text: str, hits: Sequence[Hit], tag: str, notice: str | None = None) -> Iterator[str]:
    if fmt == "json":
        key = "files" if hits and not isinstance(hits[0], Hit) else "hits"  # grouped by file: FileHits
        row = {"query_id": qid, "query": text, key: [h.as_dict() for h in hits]}
        if notice:
            row["notice"] = notice
        yield json.dumps(row, ensure_ascii=False)
        return
    for rank, h in enumerate(hits, 1):
        if fmt == "trec":
            # every digit (shortest repr, as `vsplade-train eval` writes): trec_eval re-sorts
            # by the score it reads, so fewer digits would turn near-ties into ties it breaks
            # by page id, and tiny scores into 0
            yield f"{qid} Q0 {h.id} {rank} {float(h.score)!r} {tag}"
        else:
            yield f"{qid}\t{h.id}\t{rank}"
