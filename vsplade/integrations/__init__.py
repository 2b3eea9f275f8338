"""Thin adapters that put a `vsplade.Collection` where its users already work.

- `vsplade.integrations.langchain.VspladeRetriever`: a LangChain `BaseRetriever` (extra
  ``langchain``); `Collection.as_langchain_retriever(**kw)` makes one.
- `vsplade.integrations.llama_index.VspladeRetriever`: a LlamaIndex `BaseRetriever` (extra
  ``llama-index``); `Collection.as_llama_index_retriever(**kw)` makes one.
- `vsplade.integrations.sentence_transformers`: a V-SPLADE query side written as a
  sentence-transformers `SparseEncoder` and back (extra ``sentence-transformers``).

Each adapter only converts: the search itself is `Collection.search`, so filters, engines and
the torch-free query side behave exactly as everywhere else. Importing this package imports
none of the frameworks.
"""

from .hits import page_image

__all__ = ["page_image"]
