"""vsplade-lucene: V-SPLADE page vectors in Lucene impact indexes that Pyserini's
LuceneImpactSearcher reads unchanged; searched with {term: weight} queries, no neural model.

Modules: jvm (JVM start-up and Pyserini traps), store (index dir layout), direct (fast
indexing path), jsonvector (export + Pyserini's compatibility route), searcher, engine,
pyserini_compat (`pyserini_searcher(index_dir)`: Pyserini's own LuceneImpactSearcher on our
index, with vsplade's query encoder and float-scale scores).
"""

from .engine import LuceneEngine


def pyserini_searcher(index_dir, query_encoder=None, model=None, float_scores=True, query_scale=None,
                      plain_top_k=True):
    """Pyserini's LuceneImpactSearcher on a vsplade index (vsplade_lucene.pyserini_compat):
    query_scale rounds the query at its own scale (default min(index scale, 1000)), so its cost
    no longer grows with the index scale; plain_top_k uses Anserini's plain top-k path."""
    from .pyserini_compat import pyserini_searcher as make

    return make(index_dir, query_encoder=query_encoder, model=model, float_scores=float_scores,
                query_scale=query_scale, plain_top_k=plain_top_k)


__all__ = ["LuceneEngine", "pyserini_searcher"]
