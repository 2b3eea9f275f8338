"""vsplade-lucene: V-SPLADE page vectors in Lucene impact indexes that Pyserini's
LuceneImpactSearcher reads unchanged; searched with {term: weight} queries, no neural model.

Modules: jvm (JVM start-up and Pyserini traps), store (index dir layout), direct (fast
indexing path), jsonvector (export + Pyserini's compatibility route), searcher, engine.
"""

from .engine import LuceneEngine

__all__ = ["LuceneEngine"]
