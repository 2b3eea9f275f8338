"""SparseBatch -> bulk lines: one `index` action + one JSON document per page (orjson).

Owns value validation for rank_features: Lucene's FeatureField takes only positive *normal*
finite float32 values. A page holding NaN, an infinity or a negative weight is not sent; it
is reported as a failure naming the page (the rest of the batch goes on). Zero and subnormal
weights carry no score and are dropped from the document, counted in `dropped`.

Values are sent in the form the cluster stores them: FeatureField keeps 9 significant bits
(bits >>> 15), so each value goes out as the shortest JSON number of its stored float32. Scores
are unchanged (the cluster would drop the same bits), an index that keeps vectors in `_source`
(vector_source=True) shows what is scored there, and a
page is ~11.4 KB instead of ~16.3 KB with float64 expansions of float32s.

Term names come from the core vocabulary only (`Vocabulary.terms`), never built here, or
from the server-side kind's naming. The metadata fields and the bulk action (DocumentHeader)
are the same for every index kind; the sparse ANN kind builds its vector part itself
(kinds/sparse_ann.py). Document ids are the page ids, so writing the same page twice
overwrites it (idempotent).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Mapping

import numpy as np
import orjson

from vsplade.sparse import SparseBatch, bad_rows, feature_field_buckets
from vsplade.vocab import Vocabulary, default_vocabulary

from .settings import DEFAULT_FIELD

MIN_NORMAL = float(np.finfo(np.float32).tiny)


@dataclass
class BuiltDocs:
    ids: list[str] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)  # action + "\n" + document + "\n", per page
    dropped: int = 0  # zero / subnormal weights left out
    empty: int = 0  # pages sent with an empty vector


def encoder_fields(info: Mapping[str, Any] | None) -> dict:
    """`encoder` / `encoder_version` for every document: the name, and the explicit version
    or else a short digest of the whole description (equal digest = same encoder settings)."""
    if not info:
        return {}
    name = info.get("name") or info.get("model")
    version = info.get("version")
    if version is None:
        version = hashlib.sha1(orjson.dumps(dict(info), option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]
    return {"encoder": str(name) if name is not None else None, "encoder_version": str(version)}


@functools.lru_cache(maxsize=4096)
def _stem(source: str) -> str:
    # pages of one PDF arrive together: parsing the path once per file, not per page
    return PurePath(source).stem


def _refuse_invalid(batch: SparseBatch) -> None:
    """Builders take valid rows only: the writer has split them (SparseBatch.split_valid, the
    one validation of every engine); a caller that skipped it gets the first bad page named."""
    if len(bad_rows(batch.matrix)):
        batch.validate()


class DocumentHeader:
    """The metadata part of every page document (id, source, page, title, text snippet, path,
    sha256, encoder) and its bulk action line; the same for every index kind. `index=None`
    leaves `_index` out of the action (the bulk request then names the index in its URL).
    `full_text` (a collection built with --text-field; the writer sets it): `text` holds the
    page's whole text layer for BM25 (hybrid search), not the first `snippet_chars`."""

    def __init__(self, index: str | None = None, info: Mapping[str, Any] | None = None, snippet_chars: int = 500,
                 full_text: bool = False):
        self.snippet_chars = snippet_chars
        self.full_text = full_text
        self._encoder = {k: v for k, v in encoder_fields(info).items() if v is not None}
        self._action_head = (
            b'{"index":{"_index":' + orjson.dumps(index) + b',"_id":' if index else b'{"index":{"_id":'
        )

    def fields(self, doc_id: str, meta: Mapping[str, Any]) -> dict:
        source = meta.get("source")
        title = meta.get("title") or (_stem(str(source)) if source else None)
        text = meta.get("text")
        doc = {
            "id": doc_id,
            "source": None if source is None else str(source),
            "page": meta.get("page"),
            "title": title,
            "text": (text if self.full_text else text[: self.snippet_chars]) if isinstance(text, str) and text else None,
            "path": meta.get("path"),
            "sha256": meta.get("sha256"),
            **self._encoder,
        }
        return {k: v for k, v in doc.items() if v is not None}

    def action(self, doc_id: str) -> bytes:
        return self._action_head + orjson.dumps(doc_id) + b"}}\n"


class DocumentBuilder:
    """Builds bulk lines for one `rank_features` index. `naming` (the server-side kind's
    mlcommons.ServerSideNaming, or anything with `.terms` and `.fold(matrix)`) names the
    features instead of the vocabulary, after folding each page onto those names."""

    def __init__(
        self,
        index: str | None = None,
        info: Mapping[str, Any] | None = None,
        vocab: Vocabulary | None = None,
        field: str = DEFAULT_FIELD,
        snippet_chars: int = 500,
        naming=None,
    ):
        self.vocab = vocab or default_vocabulary()
        self.naming = naming
        # One read-only table of every piece a line is made of, each term's JSON key escaped
        # once, so building a batch is one gather (no dict, no per-key escaping, no float
        # formatting): [",term":]*V  ["term":]*V (a page's first key)  [value]*2**16  [}}\n]
        terms = naming.terms if naming is not None else self.vocab.terms
        first = [orjson.dumps(t) + b":" for t in terms]
        self._pieces = np.concatenate([
            np.asarray([b"," + k for k in first], dtype=object),
            np.asarray(first, dtype=object),
            _VALUE_JSON,
            np.asarray([b"}}\n"], dtype=object),
        ])
        self._first_key_at = self.vocab.size
        self._value_at = 2 * self.vocab.size
        self._tail_at = len(self._pieces) - 1
        self._vector_head = b"," + orjson.dumps(field) + b":{"
        self.field = field
        self.head = DocumentHeader(index, info, snippet_chars)

    def build(self, batch: SparseBatch) -> BuiltDocs:
        out = BuiltDocs()
        m = batch.matrix
        if m.shape[1] != self.vocab.size:
            raise ValueError(f"vectors have {m.shape[1]} columns, the vocabulary {self.vocab.size}")
        _refuse_invalid(batch)
        good = np.arange(m.shape[0])
        if len(good) == 0:
            return out
        if self.naming is not None:
            m = self.naming.fold(m)
        data, indices, indptr = np.asarray(m.data, dtype=np.float32), m.indices, m.indptr
        keep = data >= MIN_NORMAL  # only zeros and subnormals are left to drop here
        if not keep.all():
            out.dropped = int((~keep).sum())
            row_of = np.repeat(np.arange(len(good)), np.diff(indptr))
            indptr = np.concatenate(([0], np.cumsum(np.bincount(row_of[keep], minlength=len(good)))))
            data, indices = data[keep], indices[keep]
        counts = np.diff(indptr)
        out.empty = int((counts == 0).sum())

        # One object array holds [head, key, value, key, value, ..., tail] for every page of
        # the batch (numpy gathers, no per-value Python work); each line is then one join
        # over its slice. (One join over the whole batch is 4x slower: its two passes over a
        # million scattered objects miss the cache; a page's slice stays in it.)
        heads = []
        for r in good.tolist():
            doc_id = batch.ids[r]
            head = orjson.dumps(self.head.fields(doc_id, batch.meta[r]))
            heads.append(b"".join((self.head.action(doc_id), head[:-1], self._vector_head)))
            out.ids.append(doc_id)
        pages = len(good)
        key_code = indices.astype(np.int64)
        key_code[indptr[:-1][counts > 0]] += self._first_key_at  # no comma before a first key
        head_at = 2 * indptr[:-1] + 2 * np.arange(pages)
        key_at = 2 * np.arange(len(indices)) + 2 * np.repeat(np.arange(pages), counts) + 1
        code = np.full(2 * len(indices) + 2 * pages, self._tail_at, dtype=np.int64)
        code[key_at] = key_code
        code[key_at + 1] = self._value_at + feature_field_buckets(data)
        parts = self._pieces[code]  # heads' slots hold the tail for now
        parts[head_at] = heads
        parts = parts.tolist()
        bounds = np.append(head_at, len(parts)).tolist()
        out.lines = [b"".join(parts[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        return out


def _feature_value_json() -> np.ndarray:
    """JSON text of every value a rank_features field can hold, by FeatureField bucket.

    Lucene's FeatureField keeps 9 significant bits of the float32 (it indexes bits >>> 15), so
    a positive value has one of 2**16 stored forms. Sending that form (the shortest JSON
    number that parses back to it) changes no score, needs no per-value formatting (a table
    lookup), and is a third shorter than the float64 expansion of a float32."""
    stored = (np.arange(1 << 16, dtype=np.uint32) << np.uint32(15)).view(np.float32)
    stored[~np.isfinite(stored)] = 0  # NaN/inf buckets: never looked up (validated first)
    return np.asarray(orjson.dumps(stored, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b","), dtype=object)


_VALUE_JSON = _feature_value_json()
