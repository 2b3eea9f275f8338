"""`--engine opensearch`: the Engine that the CLI finds through the `vsplade.engines` entry point.

Options (keyword arguments; CLI flags in brackets): index [--index], url [--url: one node or
several of one cluster, comma-separated], user, password, api_key, ca_certs, insecure, headers
(dict), timeout, field ("vector"), shards (1) [--shards], replicas (cluster default)
[--replicas], threads (2), chunk_docs (500), chunk_bytes (8 MiB), max_retries (10),
backoff_initial (0.5 s), backoff_max (30 s), snippet_chars (500), progress,
query_mode ("rank_feature" | "neural_sparse"), max_clauses (1024). Credentials also come
from VSPLADE_OPENSEARCH_* env vars and never appear in repr, logs or errors.
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
_WRITER_FLOATS = ("backoff_initial", "backoff_max")


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

    def writer(self, info: Mapping[str, Any], recreate: bool = False) -> OpenSearchWriter:
        return OpenSearchWriter(self.conn, self.index, info, recreate=recreate, field=self.field, **self._writer_options())

    def searcher(self) -> OpenSearchSearcher:
        return OpenSearchSearcher(
            self.conn,
            self.index,
            field=self.options.get("field"),
            mode=self.query_mode,
            max_clauses=int(self.options.get("max_clauses", 1024)),
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
