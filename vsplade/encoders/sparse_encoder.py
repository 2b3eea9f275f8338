"""--model DIR: a sentence-transformers inference-free `SparseEncoder` (a `Router` whose "query"
route is one `SparseStaticEmbedding`), the shape of V-SPLADE's own query side.

- query side (torch-free, as always): the static weights, read from the module's safetensors
  with numpy, become the query table over the module's own tokenizer.json. The library's rule
  is kept: a token counts once however often it occurs (presence x weight), and the query is
  cut at the tokenizer's model_max_length. vsplade's rule is kept too: the five special ids
  weigh 0 (typed into a query they find nothing, on both sides).
- document side: the model's "document" route (e.g. MLMTransformer + SpladePooling) encodes
  each page's text layer with sentence-transformers itself (torch; CPU or GPU): a neural text
  baseline beside `lexical`. Pages without a text layer get an empty vector and a warning.

Only ModernBERT-vocabulary models (50368 ids, V-SPLADE's) fit: term names and the special-id
mask are that vocabulary's. Anything else is refused in one line naming the dir.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..query import QueryEncoder
from ..vocab import SPECIAL_IDS, VOCAB_SIZE, Vocabulary
from .base import DocumentEncoder, no_text_layer_warning

log = logging.getLogger(__name__)

NAME = "sentence-transformers"
STATIC = "SparseStaticEmbedding"


class SparseEncoderError(ValueError):
    """A sentence-transformers dir vsplade cannot use (named, one line)."""


def _router_dir(model: str | Path) -> Path | None:
    p = Path(model)
    try:
        modules = json.loads((p / "modules.json").read_text())
    except (OSError, ValueError):
        return None
    for m in modules if isinstance(modules, list) else []:
        if isinstance(m, dict) and str(m.get("type", "")).endswith(".Router"):
            return p / m.get("path", "")
    return None


def static_query_module(model: str | Path) -> Path | None:
    """The dir of the SparseStaticEmbedding that is the model's whole "query" route, or None
    when `model` is not an inference-free sentence-transformers SparseEncoder dir."""
    router = _router_dir(model)
    if router is None:
        return None
    try:
        cfg = json.loads((router / "router_config.json").read_text())
        route = cfg["structure"]["query"]
        types = cfg["types"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if len(route) != 1 or not str(types.get(route[0], "")).endswith("." + STATIC):
        return None
    return router / route[0]


def is_sparse_encoder(model: str | Path) -> bool:
    return static_query_module(model) is not None


class StaticQueryEncoder(QueryEncoder):
    """The query side of a SparseStaticEmbedding: weight[v] once for each distinct token v."""

    def __init__(self, tokenizer_path: Path, table: np.ndarray, max_length: int | None):
        super().__init__(tokenizer_path, table=table, mode="li_lsr",
                         vocab=Vocabulary(tokenizer_path) if _differs(tokenizer_path) else None)
        self.max_length = max_length

    def token_ids(self, text: str) -> list[int]:
        # the module's own tokenizer, whole: its normalizer / pre-tokenizer may lowercase or add a
        # leading space, which the piece cache of the base class does not know about
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return ids[: self.max_length] if self.max_length else ids

    def encode_ids(self, text: str) -> dict[int, float]:
        if not text or not text.strip():
            return {}
        w, size = self._weights, self._size
        return {i: w[i] for i in self.token_ids(text) if i < size and w[i]}


def _differs(tokenizer_path: Path) -> bool:
    from ..vocab import default_tokenizer_path

    return Path(tokenizer_path).read_bytes() != default_tokenizer_path().read_bytes()


def load_static_query_encoder(model: str | Path) -> StaticQueryEncoder:
    from .checkpoint_table import CheckpointError, read_header, read_tensor

    module = static_query_module(model)
    if module is None:
        raise SparseEncoderError(f"{model}: not a sentence-transformers SparseEncoder whose query route is one {STATIC}")
    weights, tok = module / "model.safetensors", module / "tokenizer.json"
    for f in (weights, tok):
        if not f.is_file():
            raise SparseEncoderError(f"{model}: {f.relative_to(model)} is missing (only safetensors weights "
                                     "and a fast tokenizer.json are read)")
    try:
        header = read_header(weights)
        table = read_tensor(weights, "weight", header).astype(np.float32)
    except CheckpointError as e:
        raise SparseEncoderError(str(e)) from None
    if table.shape != (VOCAB_SIZE,):
        raise SparseEncoderError(f"{model}: its {STATIC} has {table.shape[0] if table.ndim == 1 else table.shape} "
                                 f"weights; vsplade indexes the ModernBERT vocabulary ({VOCAB_SIZE} ids, V-SPLADE's)")
    try:
        max_length = json.loads((module / "tokenizer_config.json").read_text()).get("model_max_length")
    except (OSError, ValueError):
        max_length = None
    max_length = int(max_length) if isinstance(max_length, (int, float)) and max_length < 1e12 else None
    try:
        enc = StaticQueryEncoder(tok, np.maximum(table, 0.0), max_length)
    except ValueError as e:
        raise SparseEncoderError(f"{model}: {e}") from None
    enc.config = {"encoder": {"model": str(model), "name": NAME}}  # type: ignore[attr-defined]
    return enc


class SparseEncoderPages(DocumentEncoder):
    """Page text layers through the SparseEncoder's document route."""

    name = NAME
    needs_image = False
    uses_pixels = False
    needs_text = True
    batch_size = 16

    def __init__(self, model: str | Path, device: str | None = None, **options: Any):
        unknown = sorted(k for k, v in options.items() if v is not None)
        if unknown:
            raise SparseEncoderError(f"{', '.join(unknown)}: not an option of a sentence-transformers model")
        self.model_path = str(model)
        self._query = load_static_query_encoder(model)
        try:
            from sentence_transformers import SparseEncoder
        except ImportError as e:
            raise SparseEncoderError(f"--model {model}: encoding pages needs sentence-transformers "
                                     f"(pip install 'vsplade[sentence-transformers]'): {e}") from None
        self.model = SparseEncoder(self.model_path, device=device, local_files_only=True)
        self.empty_pages: list[str] = []

    def info(self) -> dict[str, Any]:
        digest = hashlib.sha256()
        for f in sorted(Path(self.model_path).rglob("*.safetensors")):
            digest.update(f.read_bytes())
        return {"name": self.name, "model": self.model_path, "weights_sha256": digest.hexdigest(),
                "vocab_size": VOCAB_SIZE}

    @property
    def warnings(self) -> list[str]:
        return no_text_layer_warning(
            self.empty_pages, "vector",
            "a sentence-transformers model reads text only: scans need V-SPLADE (--model CHECKPOINT)")

    def encode_texts(self, texts: Sequence[str]):
        """float32 CSR [len(texts), V]: the model's document vectors, special ids zeroed."""
        import scipy.sparse as sp

        rows = [i for i, t in enumerate(texts) if t and t.strip()]
        out = sp.csr_matrix((len(texts), VOCAB_SIZE), dtype=np.float32)
        if not rows:
            return out
        try:
            emb = self.model.encode_document([texts[i] for i in rows], convert_to_sparse_tensor=True,
                                             batch_size=self.batch_size, show_progress_bar=False)
        except ValueError as e:
            raise SparseEncoderError(f"--model {self.model_path}: cannot encode documents ({e})") from None
        emb = emb.coalesce().cpu()
        if emb.shape[1] != VOCAB_SIZE:
            raise SparseEncoderError(f"--model {self.model_path}: document vectors have {emb.shape[1]} dims, "
                                     f"not the ModernBERT vocabulary's {VOCAB_SIZE}")
        r, c = emb.indices().numpy()
        v = emb.values().float().numpy()
        keep = (v > 0) & ~np.isin(c, SPECIAL_IDS)
        m = sp.csr_matrix((v[keep], (np.asarray(rows)[r[keep]], c[keep])), shape=(len(texts), VOCAB_SIZE),
                          dtype=np.float32)
        m.sort_indices()
        return m

    def encode(self, pages):
        from ..sparse import SparseBatch

        texts = [p.text or "" for p in pages]
        for p, t in zip(pages, texts):
            if not t.strip():
                where = f"{p.source} page {p.page_no}"
                log.warning("%s: no text layer, empty vector", where)
                self.empty_pages.append(where)
        return SparseBatch(self.encode_texts(texts), [p.id for p in pages], [p.meta() for p in pages])

    def query_encoder(self) -> QueryEncoder:
        return self._query
