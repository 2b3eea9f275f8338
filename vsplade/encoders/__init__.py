"""Encoder lookup: ``--model lexical``, a V-SPLADE checkpoint (dir or Hub id) / model bundle, or a
sentence-transformers inference-free SparseEncoder dir (`sparse_encoder`).

The neural encoder lives in `vsplade.encoders.neural` and needs the ``encode`` extra (torch,
transformers); it is imported only when a checkpoint is asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..bundle import is_bundle, load_bundle
from ..query import QueryEncoder
from .base import DocumentEncoder
from .lexical import LexicalEncoder

LEXICAL = "lexical"
LEXICAL_NO_IDF = "lexical-noidf"

__all__ = ["DocumentEncoder", "LexicalEncoder", "load_encoder", "load_query_encoder", "ModelError"]


class ModelError(ValueError):
    pass


def _refuse_unknown_name(model: str) -> None:
    """A bare word that is neither a built-in model nor a folder here cannot be a checkpoint
    (a Hub id is owner/name): say which models exist instead of a checkpoint-loading error."""
    import difflib

    builtin = (LEXICAL, LEXICAL_NO_IDF)
    if model in builtin or "/" in model or os.sep in model or Path(model).exists():
        return
    close = difflib.get_close_matches(model, builtin, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ModelError(f"--model {model}: no such model{hint} (built in: {', '.join(builtin)}; "
                     "else a V-SPLADE checkpoint dir, a model bundle or a Hub id owner/name)")


def _is_sparse_encoder(model: str) -> bool:
    """A sentence-transformers inference-free SparseEncoder dir (vsplade.encoders.sparse_encoder)."""
    if not Path(model, "modules.json").is_file():
        return False
    from .sparse_encoder import is_sparse_encoder

    return is_sparse_encoder(model)


def load_encoder(model: str, **options: Any) -> DocumentEncoder:
    _refuse_unknown_name(model)
    if model in (LEXICAL, LEXICAL_NO_IDF):
        pruning = sorted(k for k in ("top_k", "threshold") if options.get(k) is not None)
        if pruning:
            raise ModelError(f"{', '.join(pruning)}: pruning applies to the V-SPLADE encoder, not {model}")
        return LexicalEncoder(idf="corpus" if model == LEXICAL else "none")
    if is_bundle(model):
        raise ModelError(f"{model} is a query-side model bundle; document encoding needs the checkpoint")
    if _is_sparse_encoder(model):
        from .sparse_encoder import SparseEncoderPages

        return SparseEncoderPages(model, **options)
    try:
        from .neural import VSpladeEncoder
    except ImportError as e:
        raise ModelError(
            f"--model {model}: the V-SPLADE encoder needs torch and transformers "
            f"(pip install 'vsplade[encode]'): {e}"
        ) from None
    return VSpladeEncoder.from_pretrained(model, **options)


def load_query_encoder(model: str) -> QueryEncoder:
    """Torch-free: lexical, a model bundle, or the query table inside a checkpoint."""
    _refuse_unknown_name(model)
    if model in (LEXICAL, LEXICAL_NO_IDF):
        return LexicalEncoder(idf="none").query_encoder()
    if is_bundle(model):
        return load_bundle(model)
    if _is_sparse_encoder(model):
        from .sparse_encoder import load_static_query_encoder

        return load_static_query_encoder(model)
    if Path(model, "bundle").is_dir() and is_bundle(Path(model, "bundle")):
        return load_bundle(Path(model, "bundle"))
    try:
        from .checkpoint_table import query_encoder_from_checkpoint
    except ImportError:
        raise ModelError(f"{model}: not 'lexical' and not a model bundle (make one with `vsplade bundle`)") from None
    return query_encoder_from_checkpoint(model)
