"""LlamaIndex: `VspladeRetriever`, a `BaseRetriever` over a vsplade `Collection` (extra ``llama-index``).

    from llama_index.core.query_engine import RetrieverQueryEngine
    from vsplade import Collection
    retriever = Collection.open("ix/").as_llama_index_retriever(k=5)
    engine = RetrieverQueryEngine.from_args(retriever, llm=my_llm)
    print(engine.query("who signs the forms?"))

Each `NodeWithScore` is one page: a `TextNode` whose text is the page's text layer (content=
"snippet": its best lines around the matches) and whose id is the page id (group_by="file": one
node per file, its best pages' texts, metadata `pages` / `page_ids`); its metadata carry id, source, page, score, path, sha256 and `image` (the
`vsplade show` command that renders it; in Python `vsplade.integrations.page_image(node.metadata)`).
Only source and page are shown to the LLM; the rest is for the reader. The search is
`Collection.search` (torch-free on the query side).
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional, Sequence, Union

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as e:
    raise ImportError(f"vsplade.integrations.llama_index needs llama-index-core: pip install 'vsplade[llama-index]' ({e})") from None

from . import hits as _hits

__all__ = ["VspladeRetriever"]

# what the LLM and an embedding model are not shown: ids, hashes and commands help readers, not answers
HIDDEN_KEYS = ["id", "score", "path", "sha256", "image", "warning", "page_ids"]


class VspladeRetriever(BaseRetriever):
    """Pages of a vsplade index as LlamaIndex nodes. Give `collection` (an opened
    `vsplade.Collection`), or `index` (+ `engine`, `model`, `settings`: what `Collection.open`
    takes) and it is opened on first use."""

    def __init__(self, collection=None, *, index: Optional[str] = None, engine: Optional[str] = None,
                 model: Optional[str] = None, settings: Optional[dict] = None, k: int = 4,
                 source: Optional[Union[str, Sequence[str]]] = None,
                 pages: Optional[tuple[Optional[int], Optional[int]]] = None,
                 group_by: Optional[str] = None, pages_per_file: Optional[int] = None,
                 content: str = "page", **kwargs: Any):
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        if content not in _hits.CONTENT:
            raise ValueError(f"content must be one of {', '.join(_hits.CONTENT)}, got {content!r}")
        self.collection, self.index, self.engine, self.model = collection, index, engine, model
        self.settings = dict(settings or {})
        self.k, self.source, self.pages = k, source, pages
        # group_by="file": one node per file (its best pages' texts; metadata `pages`, `page_ids`)
        self.group_by, self.pages_per_file, self.content = group_by, pages_per_file, content
        self._col = None
        self._show: list[str] = []
        super().__init__(**kwargs)

    def _nodes(self, query: str) -> list[NodeWithScore]:
        out = []
        for text, meta in _hits.adapter_records(self, query):
            node = TextNode(id_=meta["id"], text=text, metadata=meta, excluded_llm_metadata_keys=list(HIDDEN_KEYS),
                            excluded_embed_metadata_keys=list(HIDDEN_KEYS))
            out.append(NodeWithScore(node=node, score=meta["score"]))
        return out

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._nodes(query_bundle.query_str)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # the engines' clients are blocking; a Collection is safe to search from many threads
        return await asyncio.to_thread(self._nodes, query_bundle.query_str)
