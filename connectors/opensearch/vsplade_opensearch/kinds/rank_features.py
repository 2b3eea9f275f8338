"""The default kind: a `rank_features` field keyed by vsplade's term names. Scores are exact
FeatureField dot products (`rank_feature` queries, or `neural_sparse` query_tokens with
query_mode="neural_sparse"); --explain gives each term's contribution. Needs no plugin."""

from __future__ import annotations

from typing import Mapping

from vsplade.engines.base import EngineError

from ..query import SearchOptions, search_body
from .base import IndexKind, register


@register
class RankFeaturesKind(IndexKind):
    name = "rank_features"
    layout = "rank_features, vsplade term names"

    def document_builder(self, index, info, *, vocab=None, field, snippet_chars=500):
        from ..documents import DocumentBuilder

        return DocumentBuilder(index, info, vocab=vocab, field=field, snippet_chars=snippet_chars)

    def open_searcher(self, searcher, server_side: bool, model_id: str | None) -> None:
        if server_side:
            raise EngineError(f"index {searcher.index!r} was not built with --server-side-query (its features carry "
                              "vsplade term names, which no ml-commons model emits): re-index it with "
                              "`vsplade index ... --server-side-query`, or search without --server-side-query")

    def term_body(self, searcher, query: Mapping[str, float], k: int, opts: SearchOptions, explain: bool) -> dict:
        return search_body(query, k, searcher.field, opts, searcher.mode, explain, searcher.max_clauses,
                           filters=self.filters(searcher, opts))
