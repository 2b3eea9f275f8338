"""Token naming for OpenSearch ml-commons' SPARSE_TOKENIZE models (server-side plain-text query).

ml-commons' `SparseTokenizerModel` (2.19 and 3.x alike) turns a query text into weighted names:
it encodes the text with the bundle's tokenizer.json (DJL, special tokens added), keeps each
distinct id once, names it ``tokenizer.decode([id], skip_special_tokens=True)``, skips empty
names, and weighs each name ``idf.json[name]``, 1.0 when the name is missing. neural-search
then scores ``sum(weight x page feature[name])`` over a rank_features field, and refuses a
weight outside (0, 64] (Lucene FeatureField.newLinearQuery).

This module (moved here from core: only the OpenSearch connector uses it) owns the one rule that makes the bundle (idf.json) and the documents agree, so
that the plain-text score equals vsplade's own query encoder + exact scorer:

- name(id) = the byte-level BPE string decoded alone (``Ġrecords`` -> " records"). Special
  tokens ([CLS] ... <|padding|>, <|endoftext|>: 7 ids) have the empty name: never emitted, so
  their page weights are dropped.
- Several ids share a name (50,368 ids, 49,874 names): 23 runs of spaces exist both as a BPE
  token and as an added token; the tokenizer always emits the added token (added tokens are
  split out before BPE), so the name belongs to the id that encoding the name alone gives,
  and the unreachable twin's page weight is dropped (vsplade's own queries never reach it
  either: scores unchanged). The other 467 ids are fragments of multi-byte UTF-8 characters
  that decode to U+FFFD ('�' 411 ids, ' �' 44, '��' 12): one name cannot tell them
  apart, so they are not searchable server-side: their page weights are dropped (ml-commons'
  default weight 1.0 for those names then meets no page). A query holding fragments scores
  its other tokens exactly and loses only the fragment matches. The alternative, one term
  per name (W = the largest table weight of its ids, page value = max of T[id] x w[id] / W),
  was measured and rejected: a page with any fragment then matches every query with any
  fragment (benchmarks/RESULTS.md). `merge_fragments=True` keeps it for that measurement.
- Ids whose query weight is 0 (masked ids, BoW's id 0, zero table entries) can never add to a
  score: their page weights are dropped and they are left out of idf.json (ml-commons then
  weighs them 1.0 against a feature no page has; a 0 in idf.json would make neural-search
  refuse the query).
- Weights above 64: the table is divided and the pages multiplied by the same power of two
  (`scale`), which is exact in float32 and commutes with FeatureField's 9-bit truncation,
  so scores are unchanged.
- Repeated query tokens: ml-commons counts a name once; the V-SPLADE spec (li_lsr) adds
  duplicates. That difference is left as it is (measured in benchmarks/RESULTS.md).
- Lowercasing / a leading space (the lexical model's query side) go into the bundled
  tokenizer.json as normalizers (Lowercase, Prepend(" "), then the original NFC).

Torch-free: tokenizers + numpy + scipy only.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from functools import cached_property
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:  # the naming is built from a loaded QueryEncoder; no import needed to use it
    from vsplade.query import QueryEncoder

NAMING = "ml-commons-decode-v1"
FORMAT = "vsplade-opensearch-sparse"
MAX_QUERY_WEIGHT = 64.0  # Lucene FeatureField.newLinearQuery: weight in (0, 64]
ZIP_TOKENIZER = "tokenizer.json"
ZIP_IDF = "idf.json"
ZIP_CONFIG = "vsplade.json"
# fixed zip metadata: the zip (and so ml-commons' content hash) is a function of its contents
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class ModelZipError(ValueError):
    """A bad opensearch-sparse model zip (named, with what is wrong)."""


def bundled_tokenizer_json(tokenizer_path: str | Path, lowercase: bool, prefix_space: bool) -> bytes:
    """tokenizer.json for the bundle: the query encoder's own, with its lowercasing and leading
    space (done in Python by QueryEncoder) moved into the normalizer so ml-commons does them."""
    raw = Path(tokenizer_path).read_bytes()
    if not lowercase and not prefix_space:
        return raw
    spec = json.loads(raw)
    steps = []
    if lowercase:
        steps.append({"type": "Lowercase"})
    if prefix_space:
        steps.append({"type": "Prepend", "prepend": " "})
    if spec.get("normalizer"):
        steps.append(spec["normalizer"])
    spec["normalizer"] = {"type": "Sequence", "normalizers": steps}
    return json.dumps(spec, ensure_ascii=False).encode("utf-8")


class ServerSideNaming:
    """The ml-commons names of one query encoder's vocabulary, its idf.json and the page fold."""

    def __init__(self, qenc: QueryEncoder, merge_fragments: bool = False):
        from tokenizers import Tokenizer

        self.qenc = qenc
        # the rule for names several reachable ids share (U+FFFD fragments): dropped (the
        # default, see the module docstring) or max-merged (measured, rejected)
        self.merge_fragments = merge_fragments
        self.fragments_dropped = 0
        self.tokenizer_json = bundled_tokenizer_json(qenc.vocab.tokenizer_path, qenc.lowercase, qenc.prefix_space)
        self.tokenizer = Tokenizer.from_str(self.tokenizer_json.decode("utf-8"))
        plain = Tokenizer.from_file(str(qenc.vocab.tokenizer_path))
        added = set(plain.get_added_tokens_decoder())
        size = qenc.vocab.size
        weights = np.asarray(qenc._weights, dtype=np.float64)  # masked ids already 0
        names = [plain.decode([i], skip_special_tokens=True) for i in range(size)]
        by_name: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            if n:
                by_name.setdefault(n, []).append(i)
        # canonical id per id (-1: dropped); groups of >1 reachable ids are max-merged
        canon = np.full(size, -1, dtype=np.int64)
        self.groups: dict[int, list[int]] = {}
        self.twins_dropped = 0
        name_weight = np.zeros(size, dtype=np.float64)  # per canonical id
        for n, ids in by_name.items():
            if len(ids) > 1:
                alone = plain.encode(n, add_special_tokens=False).ids
                if len(alone) == 1 and alone[0] in ids and alone[0] in added:
                    self.twins_dropped += len(ids) - 1
                    ids = alone
            live = [i for i in ids if weights[i] > 0]
            if not live:
                continue
            if len(live) > 1 and not self.merge_fragments:
                self.fragments_dropped += len(live)
                continue
            head = live[0]
            canon[live] = head
            name_weight[head] = weights[live].max()
            if len(live) > 1:
                self.groups[head] = live
        self.names = names
        self.canon = canon
        top = float(name_weight.max()) if size else 0.0
        k = max(0, math.ceil(math.log2(top / MAX_QUERY_WEIGHT))) if top > MAX_QUERY_WEIGHT else 0
        self.scale = float(2.0**k)
        self._weights = weights
        self._name_weight = name_weight
        self.colliding_names = sum(1 for ids in by_name.values() if len(ids) > 1)
        self.colliding_ids = sum(len(ids) for ids in by_name.values() if len(ids) > 1)

    # ---- query side: idf.json ------------------------------------------------------------
    def idf(self) -> dict[str, float]:
        """{name: weight} for idf.json, in id order; every weight in (0, 64]."""
        heads = np.flatnonzero(self.canon == np.arange(len(self.canon)))
        w = (self._name_weight[heads] / self.scale).astype(np.float32)
        return {self.names[h]: float(v) for h, v in zip(heads.tolist(), w.tolist()) if v > 0}

    def encode(self, text: str) -> dict[str, float]:
        """What ml-commons emits for `text` (Python replica of SparseTokenizerModel.predict)."""
        idf = self._idf_lookup
        out: dict[str, float] = {}
        for i in dict.fromkeys(self.tokenizer.encode(text, add_special_tokens=True).ids):
            name = self.tokenizer.decode([i], skip_special_tokens=True)
            if name:
                out[name] = idf.get(name, 1.0)
        return out

    @cached_property
    def _idf_lookup(self) -> dict[str, float]:
        return self.idf()

    # ---- document side -------------------------------------------------------------------
    @cached_property
    def terms(self) -> list[str]:
        """Feature name per token id (the canonical ids' names; others are never written)."""
        return self.names

    def fold(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """Page vectors over ids -> over canonical ids: dropped ids removed, shared names
        max-merged (by contribution), times `scale`. Rows keep their order."""
        m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        m.sum_duplicates()
        cols = self.canon[m.indices]
        data = m.data
        keep = cols >= 0
        rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        rows, cols, data = rows[keep], cols[keep], data[keep]
        merged = np.isin(cols, np.fromiter(self.groups, dtype=np.int64, count=len(self.groups))) if self.groups else np.zeros(len(cols), bool)
        if merged.any():
            src = m.indices[keep][merged]
            contrib = (self._weights[src] * data[merged].astype(np.float64)) / self._name_weight[cols[merged]]
            # max per (row, canonical id): sort by key then take the last (largest) per key
            key = rows[merged].astype(np.int64) * len(self.canon) + cols[merged]
            order = np.lexsort((contrib, key))
            key, contrib = key[order], contrib[order]
            last = np.append(key[1:] != key[:-1], True)
            mrows, mcols = key[last] // len(self.canon), key[last] % len(self.canon)
            rows = np.concatenate([rows[~merged], mrows])
            cols = np.concatenate([cols[~merged], mcols])
            data = np.concatenate([data[~merged], contrib[last].astype(np.float32)])
        data = (data * np.float32(self.scale)).astype(np.float32)
        out = sp.csr_matrix((data, (rows, cols)), shape=m.shape, dtype=np.float32)
        out.sort_indices()
        return out

    # ---- the model zip --------------------------------------------------------------------
    def config(self) -> dict:
        q = self.qenc
        table_sha = hashlib.sha256(np.ascontiguousarray(q.table, dtype=np.float32).tobytes()).hexdigest()
        return {"format": FORMAT, "version": 1, "naming": NAMING, "mode": q.mode, "lowercase": q.lowercase,
                "prefix_space": q.prefix_space, "scale": self.scale, "table_sha256": table_sha}

    def zip_bytes(self) -> bytes:
        # idf.json in ASCII (\\u escapes): ml-commons reads it with the JVM's default charset,
        # which is not UTF-8 on Java 17 without -Dfile.encoding. Weights as float64 text of the
        # float32 value: Gson parses a double and casts, which gives back the exact float32.
        idf = json.dumps(self.idf(), ensure_ascii=True, separators=(",", ":")).encode("ascii")
        members = [(ZIP_TOKENIZER, self.tokenizer_json), (ZIP_IDF, idf),
                   (ZIP_CONFIG, (json.dumps(self.config(), indent=2, sort_keys=True) + "\n").encode())]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
            for name, data in members:
                info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
                info.create_system = 3
                info.external_attr = 0o644 << 16
                z.writestr(info, data)
        return buf.getvalue()

    @cached_property
    def content_hash(self) -> str:
        """sha256 of the model zip: what ml-commons records as model_content_hash_value."""
        return hashlib.sha256(self.zip_bytes()).hexdigest()

    def index_meta(self) -> dict:
        """What an index built for this model keeps in its _meta (model_id added once known)."""
        return {"naming": NAMING, "model_content_hash": self.content_hash, "scale": self.scale, "model_id": None}


def read_model_zip(path: str | Path) -> tuple[bytes, dict]:
    """(zip bytes, its vsplade.json or {}) after checking what ml-commons needs: a readable zip
    holding tokenizer.json (a tokenizers file) and, if present, an idf.json of name -> weight in
    (0, 64]. Raises ModelZipError naming the file and the problem."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ModelZipError(f"{p}: cannot read ({e.strerror or e})") from None
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise ModelZipError(f"{p}: not a zip file ({e})") from None
    with z:
        names = set(z.namelist())
        if ZIP_TOKENIZER not in names:
            raise ModelZipError(f"{p}: no {ZIP_TOKENIZER} at the top of the zip (has: {', '.join(sorted(names)) or 'nothing'}); "
                                "make it with `vsplade bundle MODEL --format opensearch-sparse`")
        try:
            from tokenizers import Tokenizer

            Tokenizer.from_str(z.read(ZIP_TOKENIZER).decode("utf-8"))
        except Exception as e:  # noqa: BLE001 - any parse failure is the same user error
            raise ModelZipError(f"{p}: {ZIP_TOKENIZER} is not a tokenizers file ({str(e)[:120]})") from None
        if ZIP_IDF in names:
            try:
                idf = json.loads(z.read(ZIP_IDF))
            except ValueError as e:
                raise ModelZipError(f"{p}: {ZIP_IDF} is not JSON ({e})") from None
            if not isinstance(idf, dict):
                raise ModelZipError(f"{p}: {ZIP_IDF} must be an object of token -> weight, not {type(idf).__name__}")
            for k, v in idf.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v <= MAX_QUERY_WEIGHT):
                    raise ModelZipError(f"{p}: {ZIP_IDF}: weight of {k!r} is {v!r}; neural-search needs numbers in (0, 64]")
        config = {}
        if ZIP_CONFIG in names:
            try:
                config = json.loads(z.read(ZIP_CONFIG))
            except ValueError as e:
                raise ModelZipError(f"{p}: {ZIP_CONFIG} is not JSON ({e})") from None
    return data, config
