"""--server-side-query: a `rank_features` field whose feature names are the ones an ml-commons
SPARSE_TOKENIZE model emits (mlcommons.ServerSideNaming: page vectors folded onto those
names), so any client searches in plain text with neural_sparse query_text + model_id and
gets vsplade's exact scores. `_meta.vsplade.query_model` records the naming, the model zip's
sha256, the scale and the model id (ml_model.py finds a deployed model by that sha256).

Searching with term weights is refused (no vsplade term names in the index). Building the
naming loads the query encoder (tokenizers); searching needs neither it nor torch.
"""

from __future__ import annotations

from typing import Any, Mapping

from vsplade.engines.base import EngineError, IndexMismatchError

from ..query import SearchOptions, text_search_body
from .base import IndexKind, register

QUERY_MODEL_KEY = "query_model"


@register
class ServerSideKind(IndexKind):
    name = "server_side"
    flag = "--server-side-query"
    meta_key = QUERY_MODEL_KEY
    layout = "features named for an ml-commons model"

    def __init__(self, query_model: Mapping[str, Any], naming=None):
        self.query_model = dict(query_model)
        self.naming = naming  # mlcommons.ServerSideNaming; needed to write documents only

    @classmethod
    def for_new_index(cls, settings, info, conn) -> "ServerSideKind":
        """The naming of the query model, and the id of a deployed model of the same zip when
        the cluster has one (else it is looked up by hash when searching)."""
        from ..ml_model import ModelError, find_by_hash

        naming = _naming(settings, info)
        meta = naming.index_meta()
        try:
            deployed = [m for m in find_by_hash(conn, conn.client(), meta["model_content_hash"])
                        if m.get("model_state") == "DEPLOYED"]
            if deployed:
                meta["model_id"] = deployed[0]["model_id"]
        except (ModelError, EngineError):
            pass  # no ml-commons (yet): the model id is looked up by hash when searching
        return cls(meta, naming)

    @classmethod
    def for_existing(cls, meta, settings, info, conn) -> "ServerSideKind":
        naming = _naming(settings, info)
        return cls(naming.index_meta(), naming)

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> "ServerSideKind":
        return cls(meta.get(QUERY_MODEL_KEY) or {})

    @property
    def term_naming(self) -> str:
        return self.query_model["naming"]

    def meta(self) -> dict:
        return {QUERY_MODEL_KEY: dict(self.query_model)}

    def check_stored(self, index: str, meta: Mapping[str, Any], hint: str) -> None:
        stored = meta.get(QUERY_MODEL_KEY) or {}
        if stored.get("model_content_hash") != self.query_model.get("model_content_hash"):
            raise IndexMismatchError(
                f"index {index!r} was built for the query model with zip sha256 {str(stored.get('model_content_hash'))[:12]}..., "
                f"this model gives {str(self.query_model.get('model_content_hash'))[:12]}...; {hint}")

    def document_builder(self, index, info, *, vocab=None, field, snippet_chars=500):
        from ..documents import DocumentBuilder

        if self.naming is None:  # from_meta: a searching kind
            raise EngineError("a server-side query index is written through OpenSearchEngine.writer (it loads the naming)")
        return DocumentBuilder(index, info, vocab=vocab, field=field, snippet_chars=snippet_chars, naming=self.naming)

    def open_searcher(self, searcher, server_side: bool, model_id: str | None) -> None:
        if server_side:
            from ..ml_model import resolve_model

            searcher.model_id = resolve_model(searcher.conn, searcher.client, searcher.index, self.query_model, model_id)

    def term_body(self, searcher, query, k, opts: SearchOptions, explain: bool) -> dict:
        raise EngineError(f"index {searcher.index!r} was built with --server-side-query (features named for an "
                          "ml-commons model): search it with --server-side-query (plain text)")

    def text_body(self, searcher, text: str, k: int, opts: SearchOptions) -> dict:
        if not searcher.server_side:
            return super().text_body(searcher, text, k, opts)
        return text_search_body(text, searcher.model_id, k, searcher.field, opts, filters=self.filters(searcher, opts))


def _naming(settings, info: Mapping[str, Any]):
    """The ml-commons naming of the query side of the `query_model` option, else of the
    model the pages were encoded with."""
    from vsplade.encoders import ModelError as QueryModelError, load_query_encoder

    from ..mlcommons import ServerSideNaming

    model = settings.query_model or info.get("model") or info.get("name")
    if not model or model == "unknown":
        raise EngineError("--server-side-query needs the query model: the input does not say which model "
                          "encoded it; pass --model with the checkpoint or bundle")
    try:
        return ServerSideNaming(load_query_encoder(str(model)))
    except (QueryModelError, OSError, ValueError) as e:
        raise EngineError(f"--server-side-query: {e}") from None
