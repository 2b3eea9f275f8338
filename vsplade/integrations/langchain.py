"""LangChain: `VspladeRetriever`, a `BaseRetriever` over a vsplade `Collection` (extra ``langchain``).

    from vsplade import Collection
    retriever = Collection.open("ix/").as_langchain_retriever(k=5, source="reports/")
    docs = retriever.invoke("signed forms")          # list[Document], best page first
    chain = retriever | (lambda docs: "\\n\\n".join(d.page_content for d in docs))

Each `Document` is one page: `page_content` its text layer (content="snippet": its best lines
around the matches), `metadata` id, source, page, score, path, sha256 and `image` (the
`vsplade show` command that renders it; in Python `vsplade.integrations.page_image(doc.metadata)`).
With group_by="file" each Document is a file: its best pages' texts, and `pages` / `page_ids`. The search is `Collection.search`, so the
query side stays torch-free: this module imports no torch.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal, Optional, Sequence, Union

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from pydantic import ConfigDict, PrivateAttr
except ImportError as e:  # one line that says what to install
    raise ImportError(f"vsplade.integrations.langchain needs langchain-core: pip install 'vsplade[langchain]' ({e})") from None

from . import hits as _hits

__all__ = ["VspladeRetriever"]


class VspladeRetriever(BaseRetriever):
    """Pages of a vsplade index as LangChain Documents. Give `collection` (an opened
    `vsplade.Collection`), or `index` (+ `engine`, `model`, `settings`: what
    `Collection.open` takes) and it is opened on first use."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    collection: Any = None
    index: Optional[str] = None
    engine: Optional[str] = None
    model: Optional[str] = None
    settings: dict = {}
    k: int = 4
    # filters, as Collection.search takes them: a source key / folder key (or several) and an
    # inclusive (first, last) page range, either end None
    source: Optional[Union[str, Sequence[str]]] = None
    pages: Optional[tuple[Optional[int], Optional[int]]] = None
    # "file": the k best files, one Document each (its best pages' texts; metadata `pages`)
    group_by: Optional[str] = None
    pages_per_file: Optional[int] = None
    # "page": the page's whole text layer; "snippet": its best lines around the matches
    content: Literal["page", "snippet"] = "page"

    _col: Any = PrivateAttr(default=None)
    _show: Any = PrivateAttr(default=None)

    def _documents(self, query: str) -> list[Document]:
        return [Document(page_content=text, metadata=meta, id=meta["id"])
                for text, meta in _hits.adapter_records(self, query)]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self._documents(query)

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun) -> list[Document]:
        # the engines' clients are blocking; a Collection is safe to search from many threads
        return await asyncio.to_thread(self._documents, query)
