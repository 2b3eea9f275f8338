"""vsplade-opensearch: V-SPLADE page vectors in OpenSearch `rank_features` fields, queried
with standard `rank_feature` queries (no plugin, no model on the cluster).

Modules: connection (URL, auth, TLS, redaction), mapping (index layout, `_meta` checks),
documents (SparseBatch -> bulk lines), bulk (parallel retrying `_bulk`), writer (IndexWriter),
query (search bodies), searcher (Searcher), export (NDJSON bulk file), engine (entry point).
"""

from .engine import OpenSearchEngine

__all__ = ["OpenSearchEngine"]
__version__ = "0.1.0"
