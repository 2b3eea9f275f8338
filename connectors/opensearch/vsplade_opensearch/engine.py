"""`--engine opensearch`: the Engine that the CLI finds through the `vsplade.engines` entry point.

Options (keyword arguments; CLI flags in brackets): index [--index], url [--url: one node or
several of one cluster, comma-separated], user, password, api_key, ca_certs, insecure, headers
(dict), timeout, field ("vector"), shards (1) [--shards], replicas (cluster default)
[--replicas], threads (2), chunk_docs (500), chunk_bytes (8 MiB), retry_for (120 s)
[--retry-for: how long the writer rides out a node restart or an unreachable cluster before
it stops with one line; a wall-clock budget, not a count], max_retries (none: an optional
extra cap), backoff_initial (0.5 s), backoff_max (10 s), snippet_chars (500), progress,
query_mode ("rank_feature" | "neural_sparse"), max_clauses (1024), server_side_query
[--server-side-query: documents named for an ml-commons SPARSE_TOKENIZE model, searches in plain
text through it; see ml_model.py], query_model (the model whose query side names them), model_id
[--model-id], sparse_ann [--sparse-ann], ann_threshold [--ann-threshold], ann_ceiling
[--ann-ceiling]. Credentials also come
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
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from vsplade.engines.base import Engine, EngineError
from vsplade.sparse import SparseBatch

from .connection import Connection
from .export import export_bulk
from .mapping import DEFAULT_FIELD
from .query import MODES
from .searcher import OpenSearchSearcher
from .writer import OpenSearchWriter

_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-+]{0,254}$")
_WRITER_INTS = ("threads", "chunk_docs", "chunk_bytes", "max_retries", "snippet_chars")
_WRITER_FLOATS = ("retry_for", "backoff_initial", "backoff_max")


def check_index_name(name: str | None) -> str:
    if not name:
        raise EngineError("the opensearch engine needs --index NAME (an index name)")
    if not _INDEX_NAME.match(name) or name in (".", ".."):
        raise EngineError(
            f"invalid OpenSearch index name {name!r}: lowercase letters, digits, '_', '-', '+'; "
            "not starting with '_', '-' or '+'"
        )
    return name


class OpenSearchEngine(Engine):
    name = "opensearch"
    cli_options = frozenset({"url", "user", "password", "api_key", "ca_certs", "insecure", "shards", "replicas",
                             "server_side_query", "query_model", "model_id", "sparse_ann", "ann_threshold",
                             "ann_ceiling", "retry_for"})

    def __init__(self, index: str | None = None, **options: Any):
        super().__init__(index, **options)
        self.index = check_index_name(index)
        self.conn = Connection.from_options(options)
        self.field = str(options.get("field") or DEFAULT_FIELD)
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", self.field):
            raise EngineError(f"--field must be a plain field name, got {self.field!r}")
        self.query_mode = options.get("query_mode", "rank_feature")
        if self.query_mode not in MODES:
            raise EngineError(f"query_mode must be one of {', '.join(MODES)}, not {self.query_mode!r}")

    def __repr__(self) -> str:
        return f"OpenSearchEngine(index={self.index!r}, {self.conn!r})"

    def _writer_options(self) -> dict:
        o = self.options
        out: dict[str, Any] = {}
        for k in _WRITER_INTS:
            if o.get(k) is not None:
                out[k] = int(o[k])
        for k in _WRITER_FLOATS:
            if o.get(k) is not None:
                out[k] = float(o[k])
        for k in ("shards", "replicas"):
            if k in o:
                out[k] = None if o[k] is None else int(o[k])
        if "progress" in o:
            out["progress"] = o["progress"]
        return out

    def _ann_params(self) -> dict | None:
        """The sparse_ann option as the _meta it records (None without it)."""
        o = self.options
        if not o.get("sparse_ann"):
            if o.get("ann_threshold") is not None or o.get("ann_ceiling") is not None:
                raise EngineError("--ann-threshold and --ann-ceiling apply to --sparse-ann")
            return None
        if o.get("server_side_query"):
            raise EngineError("--sparse-ann and --server-side-query do not combine (a sparse_vector index is "
                              "keyed by token ids, a server-side query index by the ml-commons model's names)")
        from .sparse_ann import ann_params

        try:
            return ann_params(o.get("ann_threshold"), o.get("ann_ceiling"))
        except (TypeError, ValueError) as e:
            raise EngineError(str(e)) from None

    def writer(self, info: Mapping[str, Any], recreate: bool = False) -> OpenSearchWriter:
        naming = query_model = None
        server_side = self.options.get("server_side_query")
        sparse_ann = self._ann_params()
        if not recreate:
            # an index built with --server-side-query or --sparse-ann stays so (delete, sync,
            # later runs without the flag): its _meta says how its vectors are stored
            from .mapping import QUERY_MODEL_KEY, SPARSE_ANN_KEY, stored_meta

            mapping = self._mapping()
            meta = stored_meta(mapping) if mapping else {}
            server_side = server_side or bool(meta.get(QUERY_MODEL_KEY))
            if meta.get(SPARSE_ANN_KEY) and not server_side:
                sparse_ann = dict(meta[SPARSE_ANN_KEY])
        if server_side:
            naming, query_model = self._server_side_naming(info)
        return OpenSearchWriter(self.conn, self.index, info, recreate=recreate, field=self.field,
                                naming=naming, query_model=query_model, sparse_ann=sparse_ann,
                                **self._writer_options())

    def _server_side_naming(self, info: Mapping[str, Any]):
        """--server-side-query: the ml-commons naming of the model's query side (the
        `query_model` option, else the model the pages were encoded with), and the _meta it
        records, with the id of a deployed model of the same zip when the cluster has one."""
        from vsplade.encoders import ModelError as QueryModelError, load_query_encoder
        from .mlcommons import ServerSideNaming

        from .ml_model import ModelError, find_by_hash

        model = self.options.get("query_model") or info.get("model") or info.get("name")
        if not model or model == "unknown":
            raise EngineError("--server-side-query needs the query model: the input does not say which model "
                              "encoded it; pass --model with the checkpoint or bundle")
        try:
            naming = ServerSideNaming(load_query_encoder(str(model)))
        except (QueryModelError, OSError, ValueError) as e:
            raise EngineError(f"--server-side-query: {e}") from None
        meta = naming.index_meta()
        try:
            deployed = [m for m in find_by_hash(self.conn, self.conn.client(), meta["model_content_hash"])
                        if m.get("model_state") == "DEPLOYED"]
            if deployed:
                meta["model_id"] = deployed[0]["model_id"]
        except (ModelError, EngineError):
            pass  # no ml-commons (yet): the model id is looked up by hash when searching
        return naming, meta

    def record_model_id(self, model_id: str) -> None:
        """Write `model_id` into this index's _meta (register-model --index)."""
        from .mapping import QUERY_MODEL_KEY, META_KEY, mapping_of, stored_meta

        from opensearchpy.exceptions import NotFoundError, OpenSearchException

        from .connection import describe_error

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
            field=self.options.get("field"),
            mode=self.query_mode,
            max_clauses=int(self.options.get("max_clauses", 1024)),
            server_side=bool(self.options.get("server_side_query")),
            model_id=self.options.get("model_id"),
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
