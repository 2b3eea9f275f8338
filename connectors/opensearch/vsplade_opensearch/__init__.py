"""vsplade-opensearch: V-SPLADE page vectors in OpenSearch `rank_features` fields, queried
with standard `rank_feature` queries (no plugin, no model on the cluster).

Modules: settings (the engine's typed options), connection (URL, auth, TLS, redaction),
kinds/ (index kinds: rank_features, server_side, sparse_ann; one strategy object each),
mapping (index layout, `_meta` checks), documents (SparseBatch -> bulk lines), bulk (parallel
retrying `_bulk`), writer (IndexWriter), query (search bodies), searcher (Searcher), export
(NDJSON bulk file), engine (entry point `vsplade.engines`), sparse_ann (SEISMIC folding and a
small script API), mlcommons (ml-commons token naming), ml_model (register/deploy/find models),
bundle_format (entry point `vsplade.bundle_formats`), commands (`vsplade opensearch ...`,
entry point `vsplade.commands`), testnode (local test nodes).
"""

from .engine import OpenSearchEngine

__all__ = ["OpenSearchEngine"]
__version__ = "0.1.0"
