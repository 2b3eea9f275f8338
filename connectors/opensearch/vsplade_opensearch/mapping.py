"""The index layout: mapping, settings and the `_meta` block that says what built the index.

One document per page::

    {"id", "source", "page", "title", "text", "encoder", "encoder_version", "<field>": {term: w}}

`<field>` (default ``vector``) is a ``rank_features`` field whose feature names are the core
vocabulary's term names (never containing '.', which a rank_feature query cannot address).
``_meta.vsplade`` holds the writer `info` and the vocabulary / term-naming contract; an index
whose `_meta` differs is refused (IndexMismatchError) unless the caller asks to recreate it.
"""

from __future__ import annotations

from typing import Any, Mapping

from vsplade.engines.base import IndexMismatchError
from vsplade.vocab import TERM_NAMING, VOCAB_SIZE

INDEX_FORMAT = "vsplade-opensearch"
FORMAT_VERSION = 1
DEFAULT_FIELD = "vector"
META_KEY = "vsplade"
# Set while a bulk job has refresh disabled, so a crashed job's successor restores the right value.
PENDING_REFRESH_KEY = "restore_refresh_interval"
UNSET = "__unset__"

METADATA_FIELDS: dict[str, dict] = {
    "id": {"type": "keyword"},
    "source": {"type": "keyword"},
    "page": {"type": "integer"},
    "title": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 512}}},
    "text": {"type": "text"},
    "encoder": {"type": "keyword"},
    "encoder_version": {"type": "keyword"},
    # source identity (vsplade.catalog): where the page was read from and which version
    "path": {"type": "keyword", "index": False},
    "sha256": {"type": "keyword"},
}
# Fields added after FORMAT_VERSION 1 indexes were created: added to such an index's mapping
# on open (an additive mapping change), so its new pages can carry them.
LATER_FIELDS = ("path", "sha256")
COLLECTION_KEY = "collection"  # vsplade.catalog properties, inside _meta.vsplade


QUERY_MODEL_KEY = "query_model"  # server-side query indexes: naming, model zip sha256, scale, model_id
SPARSE_ANN_KEY = "sparse_ann"  # sparse ANN indexes: fold, ceilings, approximate_threshold (sparse_ann.py)


def vsplade_meta(info: Mapping[str, Any], field: str, query_model: Mapping[str, Any] | None = None,
                 sparse_ann: Mapping[str, Any] | None = None) -> dict:
    meta = {
        "format": INDEX_FORMAT,
        "version": FORMAT_VERSION,
        "encoder": dict(info),
        "vocab_size": VOCAB_SIZE,
        "term_naming": TERM_NAMING,
        "field": field,
    }
    if query_model:
        # features are named as the ml-commons model emits them (vsplade.mlcommons), not by
        # vsplade's term names: a rank_feature query with vsplade terms would find nothing
        meta["term_naming"] = query_model["naming"]
        meta[QUERY_MODEL_KEY] = dict(query_model)
    if sparse_ann:
        # the vector field is a SEISMIC sparse_vector keyed by folded token ids, not rank_features
        meta[SPARSE_ANN_KEY] = dict(sparse_ann)
    return meta


def index_body(
    info: Mapping[str, Any],
    field: str = DEFAULT_FIELD,
    shards: int | None = 1,
    replicas: int | None = None,
    refresh_interval: str | None = None,
    query_model: Mapping[str, Any] | None = None,
    sparse_ann: Mapping[str, Any] | None = None,
) -> dict:
    """`sparse_ann` (sparse_ann.ann_params): the vector field is a SEISMIC sparse_vector in an
    `index.sparse: true` index instead of rank_features; metadata fields and _meta the same."""
    settings: dict[str, Any] = {}
    if shards is not None:
        settings["number_of_shards"] = int(shards)
    if replicas is not None:
        settings["number_of_replicas"] = int(replicas)
    if refresh_interval is not None:
        settings["refresh_interval"] = refresh_interval
    vector: dict = {"type": "rank_features"}
    if sparse_ann:
        from .sparse_ann import field_mapping

        settings["sparse"] = True
        vector = field_mapping(sparse_ann)
    return {
        "settings": {"index": settings},
        "mappings": {
            "_meta": {META_KEY: vsplade_meta(info, field, query_model, sparse_ann)},
            # strict: a typo'd field fails loudly instead of growing the mapping
            "dynamic": "strict",
            "properties": {**METADATA_FIELDS, field: vector},
        },
    }


def mapping_of(get_mapping_response: Mapping[str, Any]) -> dict:
    """The single index's mapping out of a GET _mapping answer (keyed by concrete index name,
    which differs from the requested name when that is an alias)."""
    if len(get_mapping_response) != 1:
        names = ", ".join(sorted(get_mapping_response))
        raise IndexMismatchError(f"the name resolves to several indices ({names}); give one index")
    (entry,) = get_mapping_response.values()
    return entry.get("mappings", {})


def check_compatible(index: str, mapping: Mapping[str, Any], info: Mapping[str, Any], field: str,
                     query_model: Mapping[str, Any] | None = None, sparse_ann: bool = False) -> dict:
    """Raise IndexMismatchError unless `mapping` is a vsplade index built with `info` (and, for
    a server-side query index, for the same query model). Returns the stored vsplade meta."""
    meta = (mapping.get("_meta") or {}).get(META_KEY)
    hint = "use another --index or --recreate"
    if not meta or meta.get("format") != INDEX_FORMAT:
        raise IndexMismatchError(f"index {index!r} exists and was not created by vsplade (no _meta.{META_KEY}); {hint}")
    stored_field = meta.get("field", DEFAULT_FIELD)
    if stored_field != field:
        raise IndexMismatchError(f"index {index!r} keeps vectors in field {stored_field!r}, not {field!r}; {hint}")
    stored_ann = bool(meta.get(SPARSE_ANN_KEY))
    if stored_ann != bool(sparse_ann):
        if stored_ann:
            raise IndexMismatchError(f"index {index!r} was built with --sparse-ann (a sparse_vector field); "
                                     f"write to it with --sparse-ann too; {hint}")
        raise IndexMismatchError(f"index {index!r} was built without --sparse-ann (rank_features); "
                                 f"--sparse-ann needs a new index; {hint}")
    want_type = "sparse_vector" if stored_ann else "rank_features"
    ftype = (mapping.get("properties") or {}).get(field, {}).get("type")
    if ftype != want_type:
        raise IndexMismatchError(f"index {index!r}: field {field!r} is {ftype or 'missing'}, not {want_type}; {hint}")
    stored_qm = meta.get(QUERY_MODEL_KEY)
    if bool(stored_qm) != bool(query_model):
        if stored_qm:
            raise IndexMismatchError(f"index {index!r} was built with --server-side-query (features named for an "
                                     f"ml-commons model); write to it with --server-side-query too; {hint}")
        raise IndexMismatchError(f"index {index!r} was built without --server-side-query (vsplade term names); "
                                 f"--server-side-query needs a new index; {hint}")
    if query_model and stored_qm.get("model_content_hash") != query_model.get("model_content_hash"):
        raise IndexMismatchError(
            f"index {index!r} was built for the query model with zip sha256 {str(stored_qm.get('model_content_hash'))[:12]}..., "
            f"this model gives {str(query_model.get('model_content_hash'))[:12]}...; {hint}")
    want_naming = query_model["naming"] if query_model else TERM_NAMING
    for key, want in (("term_naming", want_naming), ("vocab_size", VOCAB_SIZE)):
        if meta.get(key) != want:
            raise IndexMismatchError(f"index {index!r} uses {key}={meta.get(key)!r}, this vsplade writes {want!r}; {hint}")
    if meta.get("encoder") != dict(info):
        raise IndexMismatchError(
            f"index {index!r} holds vectors from encoder {meta.get('encoder')}, not {dict(info)}; {hint}"
        )
    return meta


def stored_meta(mapping: Mapping[str, Any]) -> dict:
    return dict((mapping.get("_meta") or {}).get(META_KEY) or {})
