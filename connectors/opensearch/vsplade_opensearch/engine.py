"""`--engine opensearch`: the Engine that the CLI finds through the `vsplade.engines` entry point.

Options (keyword arguments, typed and validated once by settings.OpenSearchSettings; CLI
flags in brackets): index [--index], url [--url: one node or
several of one cluster, comma-separated], user, password, api_key, ca_certs, insecure, client_cert, client_key, aws_region, aws_service, headers
(dict), timeout, field ("vector"), shards (1) [--shards], replicas (cluster default)
[--replicas], threads (2), chunk_docs (500), chunk_bytes (8 MiB), retry_for (120 s)
[--retry-for: how long the writer rides out a node restart or an unreachable cluster before
it stops with one line; a wall-clock budget, not a count], max_retries (none: an optional
extra cap), backoff_initial (0.5 s), backoff_max (10 s), snippet_chars (500), progress,
query_mode ("rank_feature" | "neural_sparse"), max_clauses (1024), hybrid_fusion ("auto" | "pipeline" |
"client": where hybrid search fuses, hybrid.py), server_side_query
[--server-side-query: documents named for an ml-commons SPARSE_TOKENIZE model, searches in plain
text through it; see ml_model.py], query_model (the model whose query side names them), model_id
[--model-id], sparse_ann [--sparse-ann], ann_threshold [--ann-threshold], ann_ceiling
[--ann-ceiling], kind (an index kind by name, kinds/; the two flags above choose it on the
CLI), vector_source (keep page vectors in `_source`; default: left out for
rank_features indexes, kept for sparse ANN; see kinds/base.py for what leaving it out gives
up). Credentials also come
from VSPLADE_OPENSEARCH_* env vars and never appear in repr, logs or errors.

sparse_ann: a new index whose vector field is a SEISMIC `sparse_vector` (neural-search 3.3+,
`index.sparse: true`; sparse_ann.py) instead of rank_features, with the same metadata fields
and _meta. Token ids are folded to id % 32768 (colliding weights summed), `ann_threshold` is
SEISMIC's approximate_threshold (segments with fewer documents are searched exactly; neural-
search's default 1,000,000), `ann_ceiling` its quantization_ceiling_ingest (default 3.0;
larger page weights are clipped, counted as `ann_clipped_weights` in the summary). The
parameters go into `_meta.vsplade.sparse_ann`: searches, lifecycle commands and later index
runs follow the index without the flag. Searches encode the query locally and send a
neural_sparse query (k = hits; --source / --page-* as its own filter, searcher._ann_filters);
scores are APPROXIMATE: dot products of byte-quantized weights over folded ids, from the
clusters SEISMIC visits, not FeatureField scores (benchmarks/RESULTS.md, "Sparse ANN").
--explain is refused on such an index.

Index kinds (kinds/): rank_features, server_side (--server-side-query), sparse_ann
(--sparse-ann). The writer's kind is chosen here, once: from the index `_meta` when the index
exists (a flag asking for another kind is refused), from the settings for a new one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from vsplade.engines.base import Engine, EngineError
from vsplade.sparse import SparseBatch

from .export import export_bulk
from .kinds import IndexKind, default_kind, kind_named, kind_of_meta, mismatch
from .searcher import OpenSearchSearcher
from .settings import OpenSearchSettings, check_index_name
from .writer import OpenSearchWriter

__all__ = ["OpenSearchEngine", "check_index_name"]


class OpenSearchEngine(Engine):
    name = "opensearch"
    cli_options = OpenSearchSettings.cli_options()

    def __init__(self, index: str | None = None, **options: Any):
        super().__init__(index, **options)
        self.settings = OpenSearchSettings.from_options(index, options)
        self.index = self.settings.index
        self.conn = self.settings.connection()
        self.field = self.settings.vector_field
        self.query_mode = self.settings.query_mode

    def __repr__(self) -> str:
        return f"OpenSearchEngine(index={self.index!r}, {self.conn!r})"

    @property
    def server_side_query(self) -> bool:
        """Searches send plain text, encoded by the cluster's ml-commons model (Collection asks)."""
        return self.settings.server_side_query

    def writer(self, info: Mapping[str, Any], recreate: bool = False) -> OpenSearchWriter:
        return OpenSearchWriter(self.conn, self.index, info, recreate=recreate, field=self.field,
                                kind=self._writer_kind(info, recreate), **self.settings.writer_options())

    def _writer_kind(self, info: Mapping[str, Any], recreate: bool) -> IndexKind:
        """The index kind to write: an existing index keeps its own (delete, sync and later runs
        need no flag), a flag asking for another is refused; a new index gets the one asked for."""
        from .mapping import is_vsplade_meta, stored_meta

        wanted = self.settings.wanted_kind
        mapping = None if recreate else self._mapping()
        meta = stored_meta(mapping) if mapping else {}
        if not is_vsplade_meta(meta):  # no index (or not ours: the writer refuses it, naming it)
            return (kind_named(wanted) if wanted else default_kind()).for_new_index(self.settings, info, self.conn)
        stored = kind_of_meta(meta)
        if wanted and kind_named(wanted) is not stored:
            raise mismatch(self.index, stored, kind_named(wanted))
        return stored.for_existing(meta, self.settings, info, self.conn)

    def record_model_id(self, model_id: str) -> None:
        """Write `model_id` into this index's _meta (register-model --index)."""
        from opensearchpy.exceptions import NotFoundError, OpenSearchException

        from .connection import describe_error
        from .kinds.server_side import QUERY_MODEL_KEY
        from .mapping import META_KEY, mapping_of, stored_meta

        client = self.conn.client()
        try:
            meta = stored_meta(mapping_of(client.indices.get_mapping(index=self.index)))
            if not meta.get(QUERY_MODEL_KEY):
                raise EngineError(f"index {self.index!r} was not built with --server-side-query; no model id to record")
            meta[QUERY_MODEL_KEY] = {**meta[QUERY_MODEL_KEY], "model_id": model_id}
            client.indices.put_mapping(index=self.index, body={"_meta": {META_KEY: meta}})
        except NotFoundError:
            raise EngineError(f"opensearch {self.conn.url}: no index {self.index!r}") from None
        except OpenSearchException as e:
            raise EngineError(self.conn.redact(f"opensearch {self.conn.url} index {self.index!r}: {describe_error(e)}")) from None

    def searcher(self) -> OpenSearchSearcher:
        return OpenSearchSearcher(
            self.conn,
            self.index,
            field=self.settings.field,  # None: the field the index _meta names
            mode=self.query_mode,
            max_clauses=self.settings.max_clauses,
            server_side=self.settings.server_side_query,
            model_id=self.settings.model_id,
            hybrid_fusion=self.settings.hybrid_fusion,
        )

    # ---- collection lifecycle, read side (vsplade.catalog) ----------------------------
    def _mapping(self) -> dict | None:
        from opensearchpy.exceptions import NotFoundError, OpenSearchException

        from .connection import check_reachable, describe_error
        from .mapping import mapping_of

        client = self.conn.client()
        try:
            check_reachable(self.conn, client)
            return mapping_of(client.indices.get_mapping(index=self.index))
        except NotFoundError:
            return None
        except OpenSearchException as e:
            raise EngineError(self.conn.redact(f"opensearch {self.conn.url} index {self.index!r}: {describe_error(e)}")) from None

    def read_properties(self) -> dict | None:
        from .mapping import COLLECTION_KEY, stored_meta

        mapping = self._mapping()
        return None if mapping is None else dict(stored_meta(mapping).get(COLLECTION_KEY) or {})

    def read_encoder_info(self) -> dict:
        from .mapping import stored_meta

        mapping = self._mapping()
        return dict(stored_meta(mapping).get("encoder") or {}) if mapping else {}

    def read_catalog(self) -> list[dict]:
        from opensearchpy.exceptions import OpenSearchException

        from .connection import describe_error
        from .writer import scan_catalog

        if self._mapping() is None:
            return []
        try:
            return scan_catalog(self.conn.client(), self.index)
        except OpenSearchException as e:
            raise EngineError(self.conn.redact(f"opensearch {self.conn.url} index {self.index!r}: {describe_error(e)}")) from None

    def location_info(self) -> dict:
        client = self.conn.client()
        size = None
        try:
            stats = client.indices.stats(index=self.index, metric="store")
            size = int(stats["_all"]["primaries"]["store"]["size_in_bytes"])
        except Exception:  # noqa: BLE001 - size is informative only
            pass
        return {"engine": self.name, "index": self.index, "url": self.conn.redact(self.conn.url),
                "size_bytes": size, "encoder": self.read_encoder_info() or None}

    @classmethod
    def export(cls, batches: Iterable[SparseBatch], out: Path, **options: Any) -> dict:
        from .settings import DEFAULT_FIELD

        name = check_index_name(options.get("index_name") or options.get("index") or "vsplade")
        return export_bulk(
            batches,
            out,
            index_name=name,
            info=options.get("info"),
            field=str(options.get("field") or DEFAULT_FIELD),
            shards=options.get("shards", 1),
            replicas=options.get("replicas"),
        )
