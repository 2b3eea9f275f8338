"""`vsplade export ENC_DIR --to opensearch-bulk`: an NDJSON `_bulk` body file.

Same documents and the same validation as the live writer (documents.py), with `_index` in
every action so the file can be posted as is::

    curl -H 'Content-Type: application/x-ndjson' -XPOST URL/_bulk --data-binary @FILE

Next to it, ``FILE.mapping.json`` is the index-creation body (PUT URL/INDEX first).
Pages with invalid values are listed in the result, not written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import orjson

from vsplade.sparse import SparseBatch

from .documents import DocumentBuilder
from .mapping import DEFAULT_FIELD, index_body


def export_bulk(
    batches: Iterable[SparseBatch],
    out: str | Path,
    index_name: str = "vsplade",
    info: Mapping[str, Any] | None = None,
    field: str = DEFAULT_FIELD,
    shards: int | None = 1,
    replicas: int | None = None,
) -> dict:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    builder = DocumentBuilder(index_name, info, field=field)
    docs = empty = dropped = 0
    failures: list[tuple[str, str]] = []
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        for batch in batches:
            batch, invalid = batch.split_valid()  # the one validation (vsplade.sparse)
            failures += invalid
            built = builder.build(batch)
            f.writelines(built.lines)
            docs += len(built.ids)
            empty += built.empty
            dropped += built.dropped
    os.replace(tmp, out)  # a crash never leaves a half file under the final name
    mapping_path = out.with_name(out.name + ".mapping.json")
    mapping_path.write_bytes(
        orjson.dumps(index_body(info or {}, field, shards, replicas), option=orjson.OPT_INDENT_2) + b"\n"
    )
    return {
        "path": str(out),
        "mapping": str(mapping_path),
        "index": index_name,
        "docs": docs,
        "empty": empty,
        "dropped_weights": dropped,
        "bytes": out.stat().st_size,
        "failures": [{"id": i, "error": e} for i, e in failures],
    }
