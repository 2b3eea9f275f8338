"""Model bundle: everything the query side needs, no torch.

A bundle dir holds ``tokenizer.json``, ``query_table.safetensors`` (tensor ``table``, float32
[V]) and ``vsplade.json``::

    {"format": "vsplade-bundle", "version": 1, "mode": "li_lsr" | "bow",
     "lowercase": false, "prefix_space": false, "vocab_size": 50368, "masked_ids": [...], "term_naming": "vsplade-term-v1",
     "encoder": {...how documents were encoded...}, "quantization": {"lucene_scale": 10000}}
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .query import MODES, QueryEncoder
from .vocab import SPECIAL_IDS, TERM_NAMING, VOCAB_SIZE, default_tokenizer_path, load_vocabulary

BUNDLE_FORMAT = "vsplade-bundle"
BUNDLE_CONFIG = "vsplade.json"
TABLE_FILE = "query_table.safetensors"
TOKENIZER_FILE = "tokenizer.json"
# the Lucene engine's default impact scale for a new (direct-built) index; an index keeps its
# own scale in its config, which is what searches use
DEFAULT_LUCENE_SCALE = 10000


class BundleError(ValueError):
    pass


def write_bundle(
    out_dir: str | Path,
    table: np.ndarray | None,
    mode: str,
    tokenizer_path: str | Path | None = None,
    encoder: dict[str, Any] | None = None,
    lucene_scale: float = DEFAULT_LUCENE_SCALE,
    lowercase: bool = False,
    prefix_space: bool = False,
) -> Path:
    from safetensors.numpy import save_file

    if mode not in MODES:
        raise BundleError(f"mode must be one of {MODES}, got {mode!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src_tok = Path(tokenizer_path) if tokenizer_path else default_tokenizer_path()
    if src_tok.resolve() != (out / TOKENIZER_FILE).resolve():
        shutil.copyfile(src_tok, out / TOKENIZER_FILE)
    if table is None:
        table = np.ones(VOCAB_SIZE, dtype=np.float32)
    table = np.ascontiguousarray(np.asarray(table, dtype=np.float32))
    if table.shape != (VOCAB_SIZE,):
        raise BundleError(f"query table has shape {table.shape}, expected ({VOCAB_SIZE},)")
    save_file({"table": table}, str(out / TABLE_FILE))
    # safetensors writes through a private temp file (mode 0600): a bundle is meant to be shared
    os.chmod(out / TABLE_FILE, 0o644)
    config = {
        "format": BUNDLE_FORMAT,
        "version": 1,
        "mode": mode,
        "lowercase": lowercase,
        "prefix_space": prefix_space,
        "vocab_size": VOCAB_SIZE,
        "masked_ids": list(SPECIAL_IDS),
        "term_naming": TERM_NAMING,
        "encoder": encoder or {},
        "quantization": {"lucene_scale": lucene_scale},
    }
    (out / BUNDLE_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return out


def is_bundle(path: str | Path) -> bool:
    p = Path(path)
    if not (p / BUNDLE_CONFIG).is_file() or not (p / TABLE_FILE).is_file():
        return False
    try:
        return json.loads((p / BUNDLE_CONFIG).read_text()).get("format") == BUNDLE_FORMAT
    except (OSError, ValueError):
        return False


def read_bundle_config(path: str | Path) -> dict:
    p = Path(path)
    try:
        config = json.loads((p / BUNDLE_CONFIG).read_text())
    except FileNotFoundError:
        raise BundleError(f"{p}: not a model bundle (no {BUNDLE_CONFIG})") from None
    except ValueError as e:
        raise BundleError(f"{p / BUNDLE_CONFIG}: invalid JSON ({e})") from None
    if config.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{p / BUNDLE_CONFIG}: not a model bundle (format={config.get('format')!r})")
    if config.get("term_naming", TERM_NAMING) != TERM_NAMING:
        raise BundleError(f"{p}: term naming {config['term_naming']!r} is not {TERM_NAMING!r}")
    return config


def load_bundle(path: str | Path) -> QueryEncoder:
    from safetensors.numpy import load_file

    p = Path(path)
    config = read_bundle_config(p)
    tok = p / TOKENIZER_FILE
    if not tok.is_file():
        raise BundleError(f"{p}: bundle has no {TOKENIZER_FILE}")
    try:
        table = load_file(str(p / TABLE_FILE))["table"]
    except (OSError, KeyError) as e:
        raise BundleError(f"{p / TABLE_FILE}: cannot read the query table ({e})") from None
    vocab = load_vocabulary(tok) if tok.read_bytes() != default_tokenizer_path().read_bytes() else None
    enc = QueryEncoder(
        tok,
        table=table,
        mode=config["mode"],
        vocab=vocab,
        lowercase=bool(config.get("lowercase", False)),
        prefix_space=bool(config.get("prefix_space", False)),
    )
    enc.config = config  # type: ignore[attr-defined]
    return enc
