"""SparseBatch -> bulk lines: one `index` action + one JSON document per page (orjson).

Owns value validation for rank_features: Lucene's FeatureField takes only positive *normal*
finite float32 values. A page holding NaN, an infinity or a negative weight is not sent; it
is reported as a failure naming the page (the rest of the batch goes on). Zero and subnormal
weights carry no score and are dropped from the document, counted in `dropped`.

Term names come from the core vocabulary only (`Vocabulary.terms`), never built here.
Document ids are the page ids, so writing the same page twice overwrites it (idempotent).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Mapping

import numpy as np
import orjson

from vsplade.sparse import SparseBatch, bad_rows
from vsplade.vocab import Vocabulary, default_vocabulary

from .mapping import DEFAULT_FIELD

MIN_NORMAL = float(np.finfo(np.float32).tiny)


@dataclass
class BuiltDocs:
    ids: list[str] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)  # action + "\n" + document + "\n", per page
    failures: list[tuple[str, str]] = field(default_factory=list)
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


def _reason(values: np.ndarray) -> str:
    if np.isnan(values).any():
        return "weight is NaN"
    if np.isinf(values).any():
        return "weight is infinite"
    return f"negative weight {float(values.min())}"


class DocumentBuilder:
    """Builds bulk lines for one index. `index=None` leaves `_index` out of the action (the
    bulk request then names the index in its URL)."""

    def __init__(
        self,
        index: str | None = None,
        info: Mapping[str, Any] | None = None,
        vocab: Vocabulary | None = None,
        field: str = DEFAULT_FIELD,
        snippet_chars: int = 500,
    ):
        self.vocab = vocab or default_vocabulary()
        self._terms = np.asarray(self.vocab.terms, dtype=object)
        self.field = field
        self.snippet_chars = snippet_chars
        self._encoder = {k: v for k, v in encoder_fields(info).items() if v is not None}
        self._action_head = (
            b'{"index":{"_index":' + orjson.dumps(index) + b',"_id":' if index else b'{"index":{"_id":'
        )

    def header(self, doc_id: str, meta: Mapping[str, Any]) -> dict:
        source = meta.get("source")
        title = meta.get("title") or (PurePath(str(source)).stem if source else None)
        text = meta.get("text")
        doc = {
            "id": doc_id,
            "source": None if source is None else str(source),
            "page": meta.get("page"),
            "title": title,
            "text": text[: self.snippet_chars] if isinstance(text, str) and text else None,
            **self._encoder,
        }
        return {k: v for k, v in doc.items() if v is not None}

    def build(self, batch: SparseBatch) -> BuiltDocs:
        out = BuiltDocs()
        m = batch.matrix
        if m.shape[1] != self.vocab.size:
            raise ValueError(f"vectors have {m.shape[1]} columns, the vocabulary {self.vocab.size}")
        data, indices, indptr = m.data, m.indices, m.indptr
        bad = set(bad_rows(m).tolist())
        keep = data >= MIN_NORMAL  # False for NaN, negatives, zeros, subnormals
        if not keep.all():
            row_of = np.repeat(np.arange(m.shape[0]), np.diff(indptr))
            bad_mask = np.isin(row_of, list(bad)) if bad else np.zeros(len(data), bool)
            out.dropped = int((~keep & ~bad_mask).sum())
            counts = np.bincount(row_of[keep], minlength=m.shape[0])
            indptr = np.concatenate(([0], np.cumsum(counts)))
            data, indices = data[keep], indices[keep]
        terms = self._terms[indices].tolist()
        values = data.tolist()
        ip = indptr.tolist()
        ids, metas, field = batch.ids, batch.meta, self.field
        for r, doc_id in enumerate(ids):
            if r in bad:
                s, e = m.indptr[r], m.indptr[r + 1]
                out.failures.append((doc_id, _reason(m.data[s:e])))
                continue
            s, e = ip[r], ip[r + 1]
            if s == e:
                out.empty += 1
            doc = self.header(doc_id, metas[r])
            doc[field] = dict(zip(terms[s:e], values[s:e]))
            out.ids.append(doc_id)
            out.lines.append(
                self._action_head + orjson.dumps(doc_id) + b"}}\n" + orjson.dumps(doc) + b"\n"
            )
        return out
